from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries.endpoint_health import Outcome, webhook_probe_take, webhooks_record_outcomes
from deliveries.models import Event

pytestmark = pytest.mark.django_db


def fold(webhook, *codes, at=None):
    at = at or timezone.now()
    webhooks_record_outcomes(
        outcomes=[Outcome(webhook.id, code is not None and 200 <= code < 300, code, at + timedelta(milliseconds=i)) for i, code in enumerate(codes)]
    )
    webhook.refresh_from_db()
    return webhook


def notices(site, event_type):
    return list(Event.objects.filter(site=site, type=event_type))


def test_failures_count_up_and_a_success_resets_the_streak(site, webhook_factory):
    webhook = fold(webhook_factory(site=site), 500, None, 503)
    assert webhook.consecutive_failures == 3 and webhook.failing_since is not None
    webhook = fold(webhook, 200)
    assert webhook.consecutive_failures == 0 and webhook.failing_since is None and webhook.last_success_at


def test_circuit_opens_after_the_threshold_notifies_the_owner_and_a_success_closes_it(site, webhook_factory, settings):
    settings.AGENTBOT_CIRCUIT_THRESHOLD = 3
    settings.AGENTBOT_CIRCUIT_PROBE_INTERVAL = 30
    owner = webhook_factory(site=site, events=["webhook.circuit_opened"])
    webhook = fold(webhook_factory(site=site, events=["ticket.created"]), 500, 500)
    assert not webhook.circuit_open
    webhook = fold(webhook, 500)
    assert webhook.circuit_open and webhook.circuit_probe_at > timezone.now() + timedelta(seconds=25)
    (notice,) = notices(site, "webhook.circuit_opened")
    assert notice.data["webhook_id"] == webhook.id and notice.data["consecutive_failures"] == 3
    assert list(notice.deliveries.values_list("webhook_id", flat=True)) == [owner.id]

    fold(webhook, 500)
    assert len(notices(site, "webhook.circuit_opened")) == 1, "an open circuit is announced once"
    webhook = fold(webhook, 200)
    assert not webhook.circuit_open and webhook.circuit_probe_at is None


def test_one_probe_per_interval(site, webhook_factory, settings):
    settings.AGENTBOT_CIRCUIT_THRESHOLD = 1
    settings.AGENTBOT_CIRCUIT_PROBE_INTERVAL = 60
    webhook = fold(webhook_factory(site=site), 500)
    later = webhook.circuit_probe_at + timedelta(seconds=1)
    assert not webhook_probe_take(webhook_id=webhook.id, now=timezone.now())
    assert webhook_probe_take(webhook_id=webhook.id, now=later)
    assert not webhook_probe_take(webhook_id=webhook.id, now=later), "the next probe waits another interval"


def test_410_gone_disables_at_once_with_the_reason(site, webhook_factory):
    owner = webhook_factory(site=site, events=["webhook.disabled"])
    webhook = fold(webhook_factory(site=site, events=["ticket.created"]), 410)
    assert not webhook.enabled and webhook.disabled_reason == "the receiver answered 410 Gone" and webhook.disabled_at
    (notice,) = notices(site, "webhook.disabled")
    assert notice.data["reason"] == webhook.disabled_reason
    assert list(notice.deliveries.values_list("webhook_id", flat=True)) == [owner.id]


def test_failing_for_the_whole_window_disables(site, webhook_factory, settings):
    settings.AGENTBOT_DISABLE_AFTER_DAYS = 5
    settings.AGENTBOT_CIRCUIT_THRESHOLD = 1000
    webhook = fold(webhook_factory(site=site), 500, at=timezone.now() - timedelta(days=4))
    assert webhook.enabled
    webhook = fold(webhook, 500, at=timezone.now() - timedelta(days=3))
    assert webhook.enabled, "four days of failures is not yet five"
    webhook.failing_since = timezone.now() - timedelta(days=5, minutes=1)
    webhook.save()
    webhook = fold(webhook, 500)
    assert not webhook.enabled and "every delivery failed since" in webhook.disabled_reason


def test_reenabling_clears_the_reason(site, webhook_factory, api):
    webhook = fold(webhook_factory(site=site), 410)
    response = api.patch(f"/api/v1/webhooks/{webhook.id}", {"enabled": True}, format="json")
    assert response.status_code == 200
    assert response.json()["enabled"] is True and response.json()["disabled_reason"] == ""
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 0 and webhook.failing_since is None and not webhook.circuit_open
