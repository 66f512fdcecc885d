"""Broker webhooks end to end: events published through the API, a real Celery worker, the real
RabbitMQ, and a consumer that reads the queue and verifies each message as a receiver would."""

import hashlib
import hmac
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from deliveries.models import Delivery
from subscriptions.services import webhook_create
from tests.conftest import client_for
from tests.support.rabbitmq import WEBHOOK_URL, BrokerQueue, SilentBroker, broker_answers, broker_start, broker_stop

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MESSAGE = {
    "conversation_id": "conv_1",
    "message_id": "msg_1",
    "sender_type": "visitor",
    "body": "Hallo, Ünïcødé 👋",
    "visitor_email": None,
    "visitor_name": None,
}


@pytest.fixture
def broker_queue():
    queue = BrokerQueue(binding_key="#", exchange_type="topic")
    yield queue
    queue.close()


def publish_events(site, count: int, event_type: str = "message.created") -> list[str]:
    """POST /api/v1/events `count` times; the ids of the deliveries they made."""
    api = client_for(site)
    ids = []
    for n in range(count):
        response = api.post("/api/v1/events", {"event": event_type, "data": {**MESSAGE, "message_id": f"msg_{n}"}}, format="json")
        assert response.status_code in (200, 201, 202), response.content
        ids += [d["id"] for d in api.get(f"/api/v1/events/{response.json()['id']}").json()["deliveries"]]
    return ids


def wait_until_settled(ids: list[str], status: str, timeout: float) -> list[Delivery]:
    deadline = time.monotonic() + timeout
    while True:
        deliveries = list(Delivery.objects.filter(pk__in=ids))
        if len(deliveries) == len(ids) and all(d.status == status for d in deliveries):
            return deliveries
        if time.monotonic() > deadline:
            states = sorted((d.id, d.status, d.last_error) for d in deliveries if d.status != status)
            raise AssertionError(f"not all {status} after {timeout:g} s: {states[:5]}")
        time.sleep(0.2)


def verify_agentbot(secret: str, headers: dict, body: bytes) -> bool:
    """Seed 002's check, written from its text: HMAC-SHA256(secret, "<t>.<body>") against the first v1."""
    fields = [part.split("=", 1) for part in headers["X-Agentbot-Signature"].split(",")]
    t, v1 = dict(fields)["t"], next(value for name, value in fields if name == "v1")
    expected = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, v1)


def test_each_event_arrives_once_as_a_signed_persistent_message(site, broker_queue, workers):
    webhook = webhook_create(site=site, url=WEBHOOK_URL, events=["message.created"], exchange=broker_queue.exchange)
    workers.start()
    ids = publish_events(site, 5)

    received = broker_queue.get(5)
    wait_until_settled(ids, "succeeded", timeout=30)
    received = broker_queue.drain(1.5)  # a second copy would have arrived by now
    assert sorted(m.message_id for m in received) == sorted(ids)

    for got in received:
        assert verify_agentbot(webhook.secret, got.headers, got.body)
        assert got.headers["X-Agentbot-Delivery-Id"] == got.message_id
        assert got.headers["X-Agentbot-Event"] == "message.created" == got.type == got.routing_key
        assert (got.content_type, got.delivery_mode) == ("application/json", 2)
        body = json.loads(got.body)
        assert body["event"] == "message.created" and body["site_id"] == site.id and body["data"]["body"] == MESSAGE["body"]
    (attempt,) = Delivery.objects.get(pk=ids[0]).attempts.all()
    assert attempt.succeeded and attempt.status_code is None
    assert attempt.response_body == f"confirmed by the broker (exchange={broker_queue.exchange!r} routing key='message.created')"
    log = "".join(p.log_path.read_text(errors="replace") for p in workers.procs)
    assert "guest:guest" not in log


def test_a_standard_webhooks_message_verifies_with_the_standardwebhooks_library(site, broker_queue, workers):
    webhook = webhook_create(
        site=site, url=WEBHOOK_URL, events=["*"], format="standard", exchange=broker_queue.exchange, routing_key="crm.agentbot"
    )
    workers.start()
    (delivery_id,) = publish_events(site, 1, "ticket.created")
    (got,) = broker_queue.get(1)
    assert got.routing_key == "crm.agentbot" and got.message_id == delivery_id
    payload = StandardWebhook(webhook.secret).verify(got.body, got.headers)
    assert payload["type"] == "ticket.created"


def test_an_unroutable_routing_key_is_a_failed_attempt_that_says_no_route(site, workers):
    queue = BrokerQueue(binding_key="message.created", exchange_type="direct")
    try:
        webhook_create(site=site, url=WEBHOOK_URL, events=["*"], exchange=queue.exchange, routing_key="nobody.listens")
        workers.start(AGENTBOT_RETRY_SCHEDULE="0,60")
        (delivery_id,) = publish_events(site, 1)
        deadline = time.monotonic() + 30
        while not Delivery.objects.get(pk=delivery_id).attempts.exists():
            assert time.monotonic() < deadline, "no attempt was recorded"
            time.sleep(0.2)
        delivery = Delivery.objects.get(pk=delivery_id)
        (attempt,) = delivery.attempts.all()
        assert not attempt.succeeded
        assert attempt.error.startswith("unroutable (NO_ROUTE, 312)") and "routing key='nobody.listens'" in attempt.error
        assert delivery.status == "pending" and delivery.next_attempt_at is not None  # retried by the schedule
        assert queue.drain(0.5) == []
    finally:
        queue.close()


def test_a_broker_that_hangs_holds_only_its_own_webhooks_slots(site, broker_queue, workers):
    silent = SilentBroker()
    try:
        hanging = webhook_create(site=site, url=silent.url, events=["message.created"], exchange="agentbot.events")
        webhook_create(site=site, url=WEBHOOK_URL, events=["message.created"], exchange=broker_queue.exchange)
        workers.start(AGENTBOT_HTTP_TIMEOUT="3", AGENTBOT_WEBHOOK_CONCURRENCY="2", AGENTBOT_RETRY_SCHEDULE="0,60")
        started = time.monotonic()
        ids = publish_events(site, 8)
        received = broker_queue.get(8, timeout=20)
        assert time.monotonic() - started < 8, "the healthy broker's messages waited for the hanging one"
        assert len({m.message_id for m in received}) == 8
        stuck = Delivery.objects.filter(pk__in=ids, webhook=hanging)
        deadline = time.monotonic() + 20
        while not any(d.attempts.exists() for d in stuck):
            assert time.monotonic() < deadline, "the hanging broker's attempts were never recorded"
            time.sleep(0.2)
        attempt = next(a for d in stuck for a in d.attempts.all())
        assert not attempt.succeeded and attempt.error.startswith("timed out after 3 s (connecting to the broker"), attempt.error
    finally:
        silent.close()


@pytest.mark.faults
def test_a_broker_restart_mid_run_loses_nothing(site, broker_queue, workers):
    assert broker_answers(), "RabbitMQ must run before this test"
    webhook_create(site=site, url=WEBHOOK_URL, events=["message.created"], exchange=broker_queue.exchange)
    workers.start(
        AGENTBOT_RETRY_SCHEDULE="0,1,1,1,2,2,2,3,3,3,5,5,5,5,5", AGENTBOT_CIRCUIT_THRESHOLD="1000", AGENTBOT_HTTP_TIMEOUT="3"
    )
    before = publish_events(site, 10)
    broker_queue.get(1)  # the run has started
    try:
        broker_stop()
        during = publish_events(site, 10)  # their first attempts fail: the broker is down
        time.sleep(2)
    finally:
        broker_start()
    ids = before + during
    wait_until_settled(ids, "succeeded", timeout=90)
    received = broker_queue.get(len(ids), timeout=30)
    # At least once: every delivery arrived (a confirm lost in the stop may bring a copy again).
    assert set(ids) <= {m.message_id for m in received}
    failed = [a for d in Delivery.objects.filter(pk__in=during) for a in d.attempts.all() if not a.succeeded]
    assert failed, "the deliveries published while the broker was down had failed attempts"
    assert all(a.error for a in failed)
