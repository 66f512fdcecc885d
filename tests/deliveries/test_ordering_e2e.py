"""Ordered delivery end to end (docs/ordering.md), with real parts: PostgreSQL, Redis, Celery
workers with beat, a local receiver that fails a share of what it gets. For every key, no delivery
is attempted before the one before it succeeded or failed, and every event arrives."""

import json
import threading
import time
import zlib
from collections import defaultdict

import pytest
from django.db import transaction

from deliveries.models import Delivery
from deliveries.services.publish import event_publish
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Short leases and schedules: a killed worker's deliveries are sent again within seconds.
FAST = {
    "AGENTBOT_RETRY_SCHEDULE": "0,1,1,1",
    "AGENTBOT_HTTP_TIMEOUT": "2",
    "AGENTBOT_WEBHOOK_QUEUE_ROUNDS": "1",
    "AGENTBOT_SWEEP_INTERVAL": "0.5",
    # A third of the keys' heads fail together and retry together a second later: ten failures in
    # a row would open the circuit, whose probe comes once a minute. The circuit keeps order too
    # (tests/deliveries/test_ordering.py); here it would only make the run as slow as its probe.
    "AGENTBOT_CIRCUIT_THRESHOLD": "1000",
}


class Ledger:
    """What the receiver saw of each (key, n): every arrival, and when it answered each attempt."""

    def __init__(self, receiver: Receiver, *, fails, delay: float = 0.02) -> None:
        self.receiver, self.fails, self.delay = receiver, fails, delay
        self.lock = threading.Lock()
        self.arrivals: dict[str, list[tuple[int, float]]] = defaultdict(list)  # key -> [(n, arrived)]
        self.answered: dict[tuple[str, int], list[tuple[bool, float]]] = defaultdict(list)  # -> [(ok, at)]
        receiver.responder = self.respond

    def respond(self, number: int) -> tuple[int, bytes]:
        request = self.receiver.received[number - 1]
        data = json.loads(request.body)["data"]
        key, n = data["key"], data["n"]
        with self.lock:
            self.arrivals[key].append((n, request.at))
            attempt = len(self.answered[(key, n)]) + 1
        time.sleep(self.delay)  # in flight a moment: a second request of the key would overlap
        ok = not self.fails(key, n, attempt)
        with self.lock:
            self.answered[(key, n)].append((ok, time.time()))
        return (200, b'{"ok":true}') if ok else (500, b'{"error":"not now"}')

    def check(self, keys: list[str], count: int) -> None:
        """Per key: the first arrival of n+1 after n was answered for the last time (it succeeded
        or ran out of attempts), arrivals never go back to an earlier n, and all of 0..count-1 came."""
        for key in keys:
            seen = [n for n, _ in self.arrivals[key]]
            assert seen == sorted(seen), f"key {key} went back: {seen}"
            assert sorted(set(seen)) == list(range(count)), f"key {key} is missing some: {seen}"
            for n in range(1, count):
                first_arrival = min(at for m, at in self.arrivals[key] if m == n)
                last_answer = max(at for _, at in self.answered[(key, n - 1)])
                assert first_arrival >= last_answer, f"key {key}: {n} arrived before {n - 1} was answered"


def publish(site, key: str, n: int) -> str:
    with transaction.atomic():
        event, _ = event_publish(site=site, event_type="ticket.created", data={"key": key, "n": n}, ordering_key=key)
    return event.id


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_keys_interleaved_keep_their_order_through_failures_two_workers_and_one_killed_mid_run(
    site, webhook_factory, receiver, workers
):
    keys, count = [f"conv-{i}" for i in range(10)], 6
    webhook = webhook_factory(site=site, url=receiver.url, events=["ticket.created"], ordering="key")

    def fails(key: str, n: int, attempt: int) -> bool:
        if (key, n) == ("conv-0", 2):
            return True  # never accepted: it ends failed after its schedule, and its key moves on
        return zlib.crc32(f"{key}/{n}".encode()) % 3 == 0 and attempt <= 2  # a third fail twice

    ledger = Ledger(receiver, fails=fails)
    doomed = workers.start(**FAST)
    workers.start(**FAST)
    for n in range(count):
        for key in keys:
            publish(site, key, n)

    receiver.wait_for(15, timeout=30)
    workers.kill(doomed)  # SIGKILL mid-run: what it held comes back when its leases run out

    total = len(keys) * count
    wait_until(
        lambda: Delivery.objects.filter(webhook=webhook).exclude(status="pending").count() == total, 90, "every delivery to end"
    )
    ledger.check(keys, count)
    failed = Delivery.objects.filter(webhook=webhook, status="failed")
    assert [(d.event.data["key"], d.event.data["n"]) for d in failed] == [("conv-0", 2)]


def test_a_paused_webhook_enabled_again_sends_each_keys_deliveries_in_publish_order_one_at_a_time(
    site, api, webhook_factory, receiver, workers
):
    webhook = webhook_factory(site=site, url=receiver.url, events=["ticket.created"], ordering="key", enabled=False)
    ledger = Ledger(receiver, fails=lambda key, n, attempt: False, delay=0.1)
    workers.start(**FAST)
    publish(site, "A", 0)
    for n in range(6):
        publish(site, "B", n)
    time.sleep(1)
    assert receiver.received == []

    assert api.patch(f"/api/v1/webhooks/{webhook.id}", {"enabled": True}, format="json").status_code == 200

    receiver.wait_for(7, timeout=30)
    wait_until(lambda: not Delivery.objects.filter(webhook=webhook, status="pending").exists(), 30, "all sent")
    ledger.check(["B"], 6)
    ledger.check(["A"], 1)
