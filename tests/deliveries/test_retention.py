from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from deliveries.models import Attempt, Delivery, Event
from deliveries.retention import attempts_purge_old, events_purge_old, retention_cutoff
from deliveries.services.publish import event_publish

pytestmark = pytest.mark.django_db


def make_events(site, webhook, count, *, age_days, status):
    with transaction.atomic():
        events = [
            event_publish(site=site, event_type="webhook.test", data={"webhook_id": webhook.id}, only_webhook=webhook)[0]
            for _ in range(count)
        ]
    ids = [e.id for e in events]
    at = timezone.now() - timedelta(days=age_days)
    Event.objects.filter(id__in=ids).update(created_at=at)
    Delivery.objects.filter(event_id__in=ids).update(status=status)
    Attempt.objects.bulk_create(
        Attempt(delivery=d, number=1, at=at, status_code=200) for d in Delivery.objects.filter(event_id__in=ids)
    )
    return ids


def test_old_finished_events_go_in_batches_and_recent_or_pending_ones_stay(site, webhook_factory, settings):
    settings.AGENTBOT_RETENTION_DAYS = 30
    webhook = webhook_factory(site=site)
    old_done = make_events(site, webhook, 5, age_days=40, status="succeeded")
    old_pending = make_events(site, webhook, 1, age_days=40, status="pending")
    recent = make_events(site, webhook, 2, age_days=1, status="failed")

    assert events_purge_old(cutoff=retention_cutoff(), batch_size=2) == 5
    remaining = set(Event.objects.values_list("id", flat=True))
    assert remaining == set(old_pending + recent)
    assert not Delivery.objects.filter(event_id__in=old_done).exists()
    assert not Attempt.objects.filter(delivery__event_id__in=old_done).exists()

    assert attempts_purge_old(cutoff=retention_cutoff(), batch_size=1) == 1, "the pending delivery's old attempt"
    assert Delivery.objects.filter(event_id__in=old_pending, status="pending").exists()
    assert Attempt.objects.filter(delivery__event_id__in=recent).count() == 2
