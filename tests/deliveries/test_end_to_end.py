"""The whole flow with real parts: PostgreSQL, Redis, a Celery worker with beat, a local receiver."""

import hashlib
import hmac
import json
import time
from itertools import pairwise

import pytest
from django.db import transaction

from deliveries.models import Delivery
from deliveries.services.publish import event_publish
from tests.support.node import node_verify
from tests.support.receiver import fail_times

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MESSAGE = {
    "conversation_id": "conv_xyz",
    "message_id": "msg_123",
    "sender_type": "visitor",
    "body": "Hi, what's your pricing? Ünïcødé 👋",
    "visitor_email": None,
    "visitor_name": None,
}


def wait_for_status(delivery_id: str, status: str, timeout: float = 30.0) -> Delivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery = Delivery.objects.get(pk=delivery_id)
        if delivery.status == status:
            return delivery
        time.sleep(0.1)
    raise AssertionError(f"{delivery_id} is {delivery.status} after {timeout:g} s, expected {status}")


def verify_by_hand(secret: str, headers: dict, body: bytes) -> bool:
    """Written from seed 002's text, not from the project's signer."""
    fields = dict(part.split("=", 1) for part in headers["x-agentbot-signature"].split(","))
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


def publish(site, event_type="message.created", data=MESSAGE):
    with transaction.atomic():
        event, _ = event_publish(site=site, event_type=event_type, data=data)
    return event, event.deliveries.get()


def test_published_event_arrives_once_signed_and_is_logged_as_succeeded(site, webhook_factory, receiver, workers):
    webhook = webhook_factory(site=site, url=receiver.url, events=["message.created"])
    workers.start()
    event, delivery = publish(site)

    (request,) = receiver.wait_for(1)
    delivered = wait_for_status(delivery.id, "succeeded")
    time.sleep(1.5)  # a second copy would have arrived by now (sweep runs every 0.5 s)
    assert len(receiver.received) == 1

    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-agentbot-event"] == "message.created"
    assert request.headers["x-agentbot-delivery-id"] == delivery.id
    body = json.loads(request.body)
    assert body == {"event": "message.created", "timestamp": body["timestamp"], "site_id": site.id, "data": MESSAGE}
    assert body["timestamp"] == event.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert verify_by_hand(webhook.secret, request.headers, request.body)
    (node,) = node_verify("agentbot", webhook.secret, [request])
    assert node == {"ok": True, "reserialised_equal": True}

    assert delivered.attempt_count == 1
    (attempt,) = delivered.attempts.all()
    assert (attempt.number, attempt.status_code, attempt.succeeded) == (1, 200, True)
    assert attempt.response_body == '{"ok":true}'


def test_receiver_failing_three_times_gets_four_attempts_on_schedule(site, webhook_factory, receiver, workers):
    schedule = [0, 1, 2, 1, 2]
    receiver.responder = fail_times(3)
    webhook_factory(site=site, url=receiver.url)
    workers.start(AGENTBOT_RETRY_SCHEDULE=",".join(map(str, schedule)))
    _, delivery = publish(site)

    received = receiver.wait_for(4, timeout=30)
    delivered = wait_for_status(delivery.id, "succeeded")
    assert delivered.attempt_count == 4
    assert [a.status_code for a in delivered.attempts.order_by("number")] == [500, 500, 500, 200]
    ids = {r.headers["x-agentbot-delivery-id"] for r in received}
    assert ids == {delivery.id}, "every retry of one delivery carries the same delivery id"
    gaps = [b.at - a.at for a, b in pairwise(received)]
    for gap, step in zip(gaps, schedule[1 : len(gaps) + 1], strict=True):
        assert step - 0.05 <= gap <= step + 2.0, f"gaps {gaps} do not follow the schedule {schedule}"


def test_receiver_that_always_fails_gets_five_attempts_then_failed(site, webhook_factory, receiver, workers):
    receiver.responder = lambda n: (503, b"busy")
    webhook_factory(site=site, url=receiver.url)
    workers.start(AGENTBOT_RETRY_SCHEDULE="0,1,1,1,1")
    _, delivery = publish(site)

    receiver.wait_for(5, timeout=30)
    failed = wait_for_status(delivery.id, "failed")
    time.sleep(2)
    assert len(receiver.received) == 5
    assert failed.attempt_count == 5 and failed.next_attempt_at is None
    assert [a.status_code for a in failed.attempts.all()] == [503] * 5


def test_redirect_is_not_followed_and_counts_as_failure(site, webhook_factory, receiver, workers):
    receiver.responder = lambda n: (302, b"")
    webhook_factory(site=site, url=receiver.url)
    workers.start(AGENTBOT_RETRY_SCHEDULE="0")
    _, delivery = publish(site)
    failed = wait_for_status(delivery.id, "failed")
    (attempt,) = failed.attempts.all()
    assert attempt.status_code == 302 and "redirect" in attempt.error


def test_lost_queue_message_is_delivered_by_the_sweep(site, webhook_factory, receiver, workers, settings):
    from agentbot.celery import app
    from deliveries.engine.outbox import this_process as outbox

    settings.AGENTBOT_DISPATCH_LEASE = 1
    webhook_factory(site=site, url=receiver.url)
    _, delivery = publish(site)  # no worker runs: the message waits in Redis
    assert outbox().flush(timeout=10), "the outbox thread did not send the message"
    assert app.control.purge() >= 1, "the on-commit enqueue should have queued a message"

    workers.start()
    receiver.wait_for(1, timeout=30)
    delivered = wait_for_status(delivery.id, "succeeded")
    assert delivered.attempt_count == 1
