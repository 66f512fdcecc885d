"""The Leads webhook document posts records to a CRM "daily": once a day, each lead or
appointment of the past day whose leads delivery ended failed is offered once more.

"Once more" is one extra attempt beyond the retry schedule. A delivery that already had one (from
an earlier run or a manual retry) is not offered again, so running this twice in a day is harmless.
"""

from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from deliveries.formats import get_format
from deliveries.models import Delivery
from deliveries.services.operator import delivery_retry
from subscriptions.event_types import APPOINTMENT_CREATED, LEAD_SUBMIT
from subscriptions.models import WebhookFormat

REOFFER_WINDOW = timedelta(days=1)
REOFFERED_EVENT_TYPES = (LEAD_SUBMIT.name, APPOINTMENT_CREATED.name)


def leads_deliveries_to_reoffer(*, now: datetime) -> QuerySet[Delivery]:
    scheduled_attempts = len(get_format(WebhookFormat.LEADS).retry_schedule())
    return Delivery.objects.filter(
        status=Delivery.Status.FAILED,
        webhook__format=WebhookFormat.LEADS,
        webhook__enabled=True,
        event__type__in=REOFFERED_EVENT_TYPES,
        event__created_at__gte=now - REOFFER_WINDOW,
        attempt_count__lte=scheduled_attempts,
    )


def leads_reoffer_failed(*, now: datetime | None = None) -> int:
    """Give each failed leads delivery of the past day one more attempt; returns how many."""
    due = list(leads_deliveries_to_reoffer(now=now or timezone.now()).select_related("webhook"))
    for delivery in due:
        delivery_retry(delivery=delivery)
    return len(due)
