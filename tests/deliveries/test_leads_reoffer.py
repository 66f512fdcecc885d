"""Once a day, each lead or appointment of the past day whose leads delivery ended failed is
offered once more (seed 004), and only once."""

from datetime import timedelta

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.utils import timezone

from agentbot.celery import app
from deliveries import tasks
from deliveries.models import Delivery, Event
from deliveries.services.leads_reoffer import leads_reoffer_failed
from deliveries.services.publish import event_publish
from subscriptions.event_types import CATALOGUE

pytestmark = pytest.mark.django_db

LEADS_ATTEMPTS = 3  # 0, 1 m, 3 m


def delivery_of(site, webhook, event_type: str, *, status: str = "failed", attempts: int = LEADS_ATTEMPTS, age=timedelta()):
    """A delivery of a fresh `event_type` event to `webhook`, as it looks when its schedule ended."""
    event, _ = event_publish(site=site, event_type=event_type, data=CATALOGUE[event_type].example, only_webhook=webhook)
    Event.objects.filter(pk=event.pk).update(created_at=timezone.now() - age)
    delivery = event.deliveries.get()
    Delivery.objects.filter(pk=delivery.pk).update(
        status=status,
        attempt_count=attempts,
        schedule_position=attempts,
        next_attempt_at=None,
        leased_until=None,
        lease_token=None,
    )
    return delivery


def test_failed_leads_and_appointments_of_the_past_day_get_exactly_one_more_attempt(
    site, webhook_factory, django_capture_on_commit_callbacks
):
    crm = webhook_factory(site=site, format="leads")
    lead = delivery_of(site, crm, "lead.submit")
    appointment = delivery_of(site, crm, "appointment.created", age=timedelta(hours=23))
    not_offered = [
        delivery_of(site, crm, "lead.submit", age=timedelta(days=2)),
        delivery_of(site, crm, "lead.submit", attempts=LEADS_ATTEMPTS + 1),  # offered once more already
        delivery_of(site, crm, "lead.submit", status="succeeded"),
        delivery_of(site, crm, "webhook.test"),
        delivery_of(site, webhook_factory(site=site, format="agentbot"), "lead.submit", attempts=5),
        delivery_of(site, webhook_factory(site=site, format="leads", enabled=False), "lead.submit"),
    ]

    before = timezone.now()
    with django_capture_on_commit_callbacks() as callbacks:
        assert leads_reoffer_failed() == 2

    assert len(callbacks) == 2, "each re-offered delivery is handed to the workers on commit"
    for delivery in (lead, appointment):
        delivery.refresh_from_db()
        assert delivery.status == "pending" and delivery.next_attempt_at >= before
        assert delivery.schedule_position == LEADS_ATTEMPTS - 1, "the next attempt is the schedule's last"
    for delivery in not_offered:
        assert Delivery.objects.get(pk=delivery.pk).next_attempt_at is None


def test_a_reoffered_delivery_that_fails_again_is_not_offered_a_third_time(site, webhook_factory):
    crm = webhook_factory(site=site, format="leads")
    delivery = delivery_of(site, crm, "lead.submit")
    assert leads_reoffer_failed() == 1
    assert leads_reoffer_failed() == 0, "it is pending now, not failed"

    # what the worker records when the extra attempt fails too
    Delivery.objects.filter(pk=delivery.pk).update(status="failed", attempt_count=LEADS_ATTEMPTS + 1, next_attempt_at=None)
    assert leads_reoffer_failed() == 0


def test_the_reoffer_runs_daily_from_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["leads-reoffer-failed"]
    assert entry["task"] == "deliveries.tasks.leads_reoffer_failed"
    assert tasks.leads_reoffer_failed.name in app.tasks
    assert entry["schedule"] == crontab(minute=0, hour=4)
