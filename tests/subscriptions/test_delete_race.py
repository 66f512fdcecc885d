"""Deleting webhooks while events are published to them, on real PostgreSQL in separate connections:
every delete wins (204, the webhook and its log gone) and no publish notices."""

import socket
import threading
import time

import pytest
from django.db import connection, transaction

from deliveries.engine import outbox
from deliveries.models import Attempt, Delivery
from deliveries.services.publish import event_publish
from subscriptions.models import Webhook
from tests.conftest import client_for
from tests.factories import SiteFactory, WebhookFactory

pytestmark = pytest.mark.django_db(transaction=True)
DATA = {"conversation_id": "conv_1", "message_id": "msg_1", "sender_type": "visitor", "body": "hi"}


def test_deletes_racing_publishes_all_win_and_no_publish_fails(monkeypatch):
    monkeypatch.setattr(outbox.this_process(), "put", lambda ids, token: None)  # no worker here: keep them stored
    site = SiteFactory()
    webhooks = [WebhookFactory(site=site, events=["*"]) for _ in range(30)]
    api = client_for(site)
    stop = threading.Event()
    published, failures = [], []

    def publish():
        try:
            while not stop.is_set():
                with transaction.atomic():
                    event, _ = event_publish(site=site, event_type="message.created", data=DATA)
                published.append(event.id)
        except Exception as exc:  # noqa: BLE001 - any failure of a publish is what this test is about
            failures.append(repr(exc))
        finally:
            connection.close()

    publishers = [threading.Thread(target=publish) for _ in range(4)]
    for thread in publishers:
        thread.start()
    try:
        statuses = [api.delete(f"/api/v1/webhooks/{webhook.id}").status_code for webhook in webhooks]
    finally:
        stop.set()
        for thread in publishers:
            thread.join(timeout=60)

    assert statuses == [204] * len(webhooks)
    assert failures == []
    assert published, "the publishes ran while the webhooks were deleted"
    assert not Webhook.objects.filter(site=site).exists()
    assert not Delivery.objects.filter(webhook_id__in=[w.id for w in webhooks]).exists()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"  # nothing listens: every attempt is refused at once


@pytest.mark.e2e
def test_deletes_racing_a_worker_recording_attempts_all_answer_204_and_no_attempt_batch_rolls_back(workers):
    site = SiteFactory()
    url = closed_port_url()
    webhooks = [WebhookFactory(site=site, url=url, events=["*"]) for _ in range(30)]
    api = client_for(site)
    worker = workers.start(
        concurrency=2,
        AGENTBOT_RETRY_SCHEDULE="0,0.2,0.2,0.2,0.2,0.2",
        AGENTBOT_CIRCUIT_THRESHOLD="100000",
        AGENTBOT_RECORD_LINGER="0.05",
    )
    stop = threading.Event()
    published, failures = [], []

    def publish():
        try:
            while not stop.is_set():
                with transaction.atomic():
                    event, _ = event_publish(site=site, event_type="message.created", data=DATA)
                published.append(event.id)
                time.sleep(0.01)
        except Exception as exc:  # noqa: BLE001 - any failure of a publish is what this test is about
            failures.append(repr(exc))
        finally:
            connection.close()

    publishers = [threading.Thread(target=publish) for _ in range(4)]
    for thread in publishers:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while Attempt.objects.count() < 200 and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker is busy recording attempts to these webhooks
        statuses = []
        for webhook in webhooks:
            statuses.append(api.delete(f"/api/v1/webhooks/{webhook.id}").status_code)
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in publishers:
            thread.join(timeout=60)
    time.sleep(1)  # what the worker had in flight is recorded (or skipped) by now

    assert statuses == [204] * len(webhooks)
    assert failures == []
    assert not Webhook.objects.filter(site=site).exists()
    assert not Delivery.objects.filter(webhook_id__in=[w.id for w in webhooks]).exists()
    log = worker.log_path.read_text(errors="replace")
    assert "attempts failed (try" not in log, "an attempt batch was rolled back:\n" + log[-3000:]
    assert "IntegrityError" not in log and "deadlock" not in log.lower()
