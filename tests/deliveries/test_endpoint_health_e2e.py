"""Endpoint health with a real worker and receiver: Retry-After, 410 Gone, the circuit breaker."""

import time

import pytest
from django.db import transaction

from deliveries.models import Delivery, Event
from deliveries.services.operator import webhook_send_test
from subscriptions.models import Webhook
from tests.deliveries.test_end_to_end import wait_for_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def send_test(webhook) -> Delivery:
    with transaction.atomic():
        return webhook_send_test(webhook=webhook).deliveries.get()


def test_retry_after_on_429_delays_the_next_attempt_up_to_twice_the_step(site, webhook_factory, receiver, workers):
    receiver.responder = lambda n: (429, b"slow down", {"Retry-After": "30"}) if n == 1 else (200, b"ok")
    webhook = webhook_factory(site=site, url=receiver.url)
    workers.start(AGENTBOT_RETRY_SCHEDULE="0,1.5")
    delivery = send_test(webhook)

    first, second = receiver.wait_for(2, timeout=30)
    wait_for_status(delivery.id, "succeeded")
    gap = second.at - first.at
    assert 3.0 - 0.05 <= gap <= 3.0 + 2.5, f"Retry-After 30 s on a 1.5 s step waits 2 × 1.5 s, not {gap:.2f} s"


def test_410_gone_disables_the_webhook_and_tells_the_owner(site, webhook_factory, receiver, workers):
    receiver.responder = lambda n: (410, b"gone")
    webhook = webhook_factory(site=site, url=receiver.url, events=["ticket.created"])
    owner = webhook_factory(site=site, url="https://owner.example.com/h", events=["webhook.disabled"])
    workers.start()
    delivery = send_test(webhook)

    failed = wait_for_status(delivery.id, "failed")
    assert failed.attempt_count == 1, "a 410 is not retried"
    # Health is folded in its own transaction right after the attempt is stored, so it may trail it.
    deadline = time.monotonic() + 10
    while Webhook.objects.get(pk=webhook.pk).enabled:
        assert time.monotonic() < deadline, "the webhook was not disabled after a 410"
        time.sleep(0.05)
    webhook.refresh_from_db()
    assert webhook.enabled is False and webhook.disabled_reason == "the receiver answered 410 Gone"
    (notice,) = Event.objects.filter(site=site, type="webhook.disabled")
    assert notice.data["webhook_id"] == webhook.id
    assert list(notice.deliveries.values_list("webhook_id", flat=True)) == [owner.id]


def test_open_circuit_holds_deliveries_lets_one_probe_through_and_closes_on_success(site, webhook_factory, receiver, workers):
    receiver.responder = lambda n: (500, b"down") if n <= 3 else (200, b"ok")
    webhook = webhook_factory(site=site, url=receiver.url)
    workers.start(
        AGENTBOT_RETRY_SCHEDULE="0,0.5,0.5,0.5,0.5,0.5", AGENTBOT_CIRCUIT_THRESHOLD=3, AGENTBOT_CIRCUIT_PROBE_INTERVAL=3
    )
    first = send_test(webhook)

    receiver.wait_for(3, timeout=30)
    deadline = time.monotonic() + 10
    while not Webhook.objects.get(pk=webhook.pk).circuit_open:
        assert time.monotonic() < deadline, "the circuit did not open after 3 failures"
        time.sleep(0.1)
    opened_at = time.time()
    held = [send_test(webhook) for _ in range(3)]
    time.sleep(1.5)
    assert len(receiver.received) == 3, "nothing goes out while the circuit is open and no probe is due"
    assert all(Delivery.objects.get(pk=d.pk).attempt_count == 0 for d in held), "held, not failed"

    for delivery in [first, *held]:
        wait_for_status(delivery.id, "succeeded", timeout=30)
    probe = receiver.received[3]
    assert probe.at - opened_at >= 3 - 1.0, "the first request after opening is the probe, one interval later"
    webhook.refresh_from_db()
    assert not webhook.circuit_open and webhook.consecutive_failures == 0
    assert Event.objects.filter(site=site, type="webhook.circuit_opened").count() == 1
