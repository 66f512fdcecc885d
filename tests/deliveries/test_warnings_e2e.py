"""Warnings with a real worker and receiver: as the receiver keeps failing the owner hears
webhook.failing at 50, 75 and 90 per cent of the way to being disabled, then webhook.recovered
when it answers again; a delivery whose schedule runs out is announced as delivery.exhausted."""

import threading
import time

import pytest
from django.db import transaction

from deliveries.models import Event
from deliveries.services.publish import event_publish
from tests.deliveries.test_end_to_end import wait_for_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# 0.0003 days: disabled after about 26 s of failing; warned at about 13, 19 and 23 s.
WINDOW_DAYS = 0.0003


def notices_about(site, webhook_id: str) -> list[tuple[str, int | None]]:
    found = Event.objects.filter(site=site, type__in=["webhook.failing", "webhook.recovered", "webhook.disabled"])
    return [(e.type, e.data.get("percent")) for e in found.order_by("created_at") if e.data.get("webhook_id") == webhook_id]


def test_failing_then_recovered_in_order_as_the_receiver_fails_and_comes_back(site, webhook_factory, receiver, workers):
    back = threading.Event()
    receiver.responder = lambda n: (200, b"ok") if back.is_set() else (503, b"down")
    webhook = webhook_factory(site=site, url=receiver.url, events=["ticket.created"])
    workers.start(
        AGENTBOT_DISABLE_AFTER_DAYS=WINDOW_DAYS,
        AGENTBOT_CIRCUIT_THRESHOLD=10_000,
        AGENTBOT_RETRY_SCHEDULE=",".join(["0"] + ["0.5"] * 80),
    )
    with transaction.atomic():
        event, _ = event_publish(site=site, event_type="ticket.created", data={"subject": "x"})

    deadline = time.monotonic() + 40
    while ("webhook.failing", 90) not in notices_about(site, webhook.id):
        assert time.monotonic() < deadline, f"no 90% warning: {notices_about(site, webhook.id)}"
        time.sleep(0.1)
    back.set()
    wait_for_status(event.deliveries.get().id, "succeeded", timeout=15)
    deadline = time.monotonic() + 10
    while ("webhook.recovered", None) not in notices_about(site, webhook.id):
        assert time.monotonic() < deadline, f"no recovery notice: {notices_about(site, webhook.id)}"
        time.sleep(0.1)
    assert notices_about(site, webhook.id) == [
        ("webhook.failing", 50),
        ("webhook.failing", 75),
        ("webhook.failing", 90),
        ("webhook.recovered", None),
    ]
    assert not Event.objects.filter(type="delivery.exhausted").exists(), "the delivery succeeded in the end"


def test_a_delivery_whose_schedule_runs_out_is_announced_as_exhausted(site, webhook_factory, receiver, workers):
    receiver.responder = lambda n: (500, b"down")
    webhook = webhook_factory(site=site, url=receiver.url, events=["ticket.created"])
    workers.start(AGENTBOT_RETRY_SCHEDULE="0,0.5")
    with transaction.atomic():
        event, _ = event_publish(site=site, event_type="ticket.created", data={"subject": "x"})
    delivery = wait_for_status(event.deliveries.get().id, "failed")
    deadline = time.monotonic() + 10
    while not Event.objects.filter(type="delivery.exhausted").exists():
        assert time.monotonic() < deadline, "no delivery.exhausted"
        time.sleep(0.1)
    (exhausted,) = Event.objects.filter(type="delivery.exhausted")
    assert exhausted.data["delivery_id"] == delivery.id and exhausted.data["webhook_id"] == webhook.id
    assert (exhausted.data["attempts"], exhausted.data["last_status_code"]) == (2, 500)
