from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from deliveries.engine.endpoint_health import EndpointAnswer, webhook_probe_take
from deliveries.models import Event
from deliveries.services.send import webhooks_health_record

pytestmark = pytest.mark.django_db


def fold(webhook, *codes, at=None):
    at = at or timezone.now()
    webhooks_health_record(
        outcomes=[
            EndpointAnswer(webhook.id, code is not None and 200 <= code < 300, code, at + timedelta(milliseconds=i))
            for i, code in enumerate(codes)
        ]
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


@pytest.mark.parametrize(
    "status, header, expected",
    [
        (429, "120", 120.0),  # within [step, 2 × step]
        (503, "10", 60.0),  # never sooner than the schedule
        (429, "100000", 120.0),  # never later than twice the step
        (500, "120", 60.0),  # only 429 and 503 carry the receiver's wish
        (429, "soon", 60.0),  # unreadable: the schedule
        (429, "Wed, 25 Nov 2026 00:01:30 GMT", 90.0),  # an HTTP date
    ],
)
def test_retry_after_stretches_the_step_within_bounds(status, header, expected):
    from datetime import datetime

    from deliveries.engine.endpoint_health import retry_delay

    now = datetime(2026, 11, 25, 0, 0, 0, tzinfo=UTC)
    assert retry_delay(60.0, status_code=status, headers={"Retry-After": header}, now=now) == expected


def test_an_open_circuit_lets_one_held_delivery_through_per_interval(site, webhook_factory, settings):
    from deliveries.engine.endpoint_health import probes_claim
    from deliveries.models import Delivery
    from deliveries.services.operator import webhook_send_test

    settings.AGENTBOT_CIRCUIT_THRESHOLD = 1
    settings.AGENTBOT_CIRCUIT_PROBE_INTERVAL = 60
    webhook = webhook_factory(site=site, events=["ticket.created"])  # not the circuit notice itself
    for _ in range(3):
        webhook_send_test(webhook=webhook)
    Delivery.objects.update(leased_until=None, lease_token=None)
    webhook = fold(webhook, 500)
    later = webhook.circuit_probe_at + timedelta(seconds=1)
    until = later + timedelta(minutes=1)

    assert probes_claim(now=timezone.now(), until=until, token="t0") == [], "no probe before its time"
    (probe,) = probes_claim(now=later, until=until, token="t1")
    assert Delivery.objects.get(pk=probe).lease_token == "t1"
    assert probes_claim(now=later, until=until, token="t2") == [], "one probe per interval"
    assert Delivery.objects.filter(lease_token__isnull=True, status="pending").count() == 2, "the rest stay held"
