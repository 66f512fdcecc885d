"""Retention: old events (with their deliveries and attempts) are deleted in small batches, so a
large backlog never holds long locks. Nothing still pending is deleted."""

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.db import purge_in_batches
from deliveries.models import Attempt, Delivery, Event


def retention_cutoff(*, now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=settings.AGENTBOT_RETENTION_DAYS)


def events_purge_old(*, cutoff: datetime, batch_size: int = 500, max_seconds: float = 20.0) -> int:
    """Delete events older than `cutoff` whose deliveries have all finished; returns how many."""
    deleted, started = 0, time.monotonic()
    pending = Delivery.objects.filter(status=Delivery.Status.PENDING).values("event_id")
    while time.monotonic() - started < max_seconds:
        ids = list(Event.objects.filter(created_at__lt=cutoff).exclude(id__in=pending).values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        with transaction.atomic():
            Attempt.objects.filter(delivery__event_id__in=ids).delete()
            Delivery.objects.filter(event_id__in=ids).delete()
            Event.objects.filter(id__in=ids).delete()
        deleted += len(ids)
    return deleted


def attempts_purge_old(*, cutoff: datetime, batch_size: int = 2000, max_seconds: float = 20.0) -> int:
    """Delete attempts older than `cutoff` (of deliveries whose event is kept for being pending)."""
    return purge_in_batches(Attempt.objects.filter(at__lt=cutoff), batch_size=batch_size, max_seconds=max_seconds)


def retention_run() -> dict[str, int]:
    cutoff = retention_cutoff()
    return {"events": events_purge_old(cutoff=cutoff), "attempts": attempts_purge_old(cutoff=cutoff)}
