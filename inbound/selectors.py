"""Reads of inbound events, for the metrics collector."""

from django.db.models import Count, Min

from deliveries.selectors import Backlog
from inbound.models import INBOUND_PENDING, InboundEvent


def inbound_pending() -> Backlog:
    """Inbound webhooks not processed yet: their count and the oldest arrival (a partial index)."""
    row = InboundEvent.objects.filter(status__in=INBOUND_PENDING).aggregate(due=Count("id"), oldest=Min("received_at"))
    return Backlog(row["due"], row["oldest"])
