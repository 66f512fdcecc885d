"""deliveries/services/send.py, function by function: the sweep's claim, what an attempt's answer
means (success, gone, the next attempt), what is stored of it and under which lease, the render
budget, a body that drips past the timeout, and outcomes_store's fallback to row by row. The
engine's own admission and slots are in test_engine.py; the whole path with a real worker in
test_end_to_end.py."""

import dataclasses
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import DataError, transaction
from django.utils import timezone

from deliveries import bulk, formats
from deliveries.engine import engine, http
from deliveries.formats import get_format
from deliveries.formats.types import Envelope
from deliveries.models import Attempt, Delivery
from deliveries.services import send
from deliveries.services.publish import event_publish
from deliveries.services.send import deliveries_send
from subscriptions.models import WebhookFormat

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


def outcome(delivery_id: str, **fields) -> bulk.AttemptRecord:
    now = timezone.now()
    values = dict(
        delivery_id=delivery_id,
        token="t",
        number=1,
        at=now,
        status_code=200,
        request_headers={},
        response_headers={"X": "y"},
        response_body="ok",
        duration_ms=5,
        error="",
        succeeded=True,
        status="succeeded",
        schedule_position=1,
        next_attempt_at=None,
    )
    return bulk.AttemptRecord(**{**values, **fields})


def test_one_refused_row_is_stored_without_its_response_and_the_rest_as_they_are(monkeypatch):
    stored: list[bulk.AttemptRecord] = []

    def record(outcomes, *, now):
        if any(o.response_body == "poison" for o in outcomes):
            raise DataError("refused")
        stored.extend(outcomes)

    monkeypatch.setattr(bulk, "record", record)
    batch = [outcome("dlv_1"), outcome("dlv_2", response_body="poison", error="HTTP 500"), outcome("dlv_3")]
    send.outcomes_store(batch, now=timezone.now())

    assert [o.delivery_id for o in stored] == ["dlv_1", "dlv_2", "dlv_3"]
    by_id = {o.delivery_id: o for o in stored}
    assert by_id["dlv_1"] == batch[0] and by_id["dlv_3"] == batch[2]
    assert (by_id["dlv_2"].response_body, by_id["dlv_2"].response_headers) == ("", {})
    assert by_id["dlv_2"].error == "HTTP 500; the receiver's response headers and body could not be stored"
    assert by_id["dlv_2"].status == "succeeded"  # the exchange happened: its outcome is kept


def test_a_database_that_is_down_is_left_to_the_engine_to_retry(monkeypatch):
    from django.db import OperationalError

    def record(outcomes, *, now):
        raise OperationalError("server closed the connection")

    monkeypatch.setattr(bulk, "record", record)
    with pytest.raises(OperationalError):
        send.outcomes_store([outcome("dlv_1"), outcome("dlv_2")], now=timezone.now())


# --- delivery_schedule_next ------------------------------------------------------------------------
def test_a_success_ends_the_delivery_and_moves_its_schedule_on():
    status, position, due = send.delivery_schedule_next(format_name=WebhookFormat.STANDARD, schedule_position=0, ok=True, now=NOW)
    assert (status, position, due) == ("succeeded", 1, None)


def test_a_failure_waits_for_the_next_step_of_the_formats_schedule(settings):
    settings.AGENTBOT_RETRY_SCHEDULE = None
    schedule = get_format(WebhookFormat.STANDARD).retry_schedule()
    status, position, due = send.delivery_schedule_next(
        format_name=WebhookFormat.STANDARD, schedule_position=0, ok=False, now=NOW, status_code=500
    )
    assert (status, position) == ("pending", 1)
    assert due == NOW + timedelta(seconds=schedule[1])


def test_a_failure_after_the_last_step_fails_the_delivery(settings):
    settings.AGENTBOT_RETRY_SCHEDULE = None
    last = len(get_format(WebhookFormat.STANDARD).retry_schedule()) - 1
    status, position, due = send.delivery_schedule_next(
        format_name=WebhookFormat.STANDARD, schedule_position=last, ok=False, now=NOW, status_code=500
    )
    assert (status, position, due) == ("failed", last + 1, None)


@pytest.mark.parametrize("answer", [{"status_code": 410}, {"status_code": 404, "gone": True}])
def test_a_receiver_gone_for_good_fails_the_delivery_at_once(answer):
    status, _, due = send.delivery_schedule_next(
        format_name=WebhookFormat.STANDARD, schedule_position=0, ok=False, now=NOW, **answer
    )
    assert (status, due) == ("failed", None)


def test_a_gone_answer_ends_the_delivery_where_the_schedule_would_retry():
    now = NOW
    retried = send.delivery_schedule_next(format_name="slack", schedule_position=0, ok=False, now=now, status_code=404)
    ended = send.delivery_schedule_next(format_name="slack", schedule_position=0, ok=False, now=now, status_code=404, gone=True)
    assert retried[0] == "pending" and retried[2] is not None
    assert ended == ("failed", 1, None)


@pytest.mark.parametrize("asked, waited", [("90", 90), ("500", 120), ("5", 60)])
def test_a_retry_after_stretches_the_wait_within_twice_the_schedules_step(settings, asked, waited):
    settings.AGENTBOT_RETRY_SCHEDULE = [0, 60, 120]
    _, _, due = send.delivery_schedule_next(
        format_name=WebhookFormat.STANDARD,
        schedule_position=0,
        ok=False,
        now=NOW,
        status_code=429,
        headers={"Retry-After": asked},
    )
    assert due == NOW + timedelta(seconds=waited)


# --- what an answer means, what is stored of it --------------------------------------------------
def job(**fields) -> engine.Job:
    values = dict(
        delivery_id="dlv_1",
        token="t",
        webhook_id="wh_1",
        event_id="evt_1",
        url="https://example.com/hook",
        format=WebhookFormat.STANDARD,
        event_type="ticket.created",
        body=b"{}",
        secrets=[],
        attempt_count=0,
        schedule_position=0,
    )
    return engine.Job(**{**values, **fields})


def test_an_answer_cut_short_is_no_success_whatever_its_status_line_said():
    fmt = get_format(WebhookFormat.STANDARD)
    assert send.attempt_succeeded(job(), http.OutboundResult(status_code=200), fmt)
    assert not send.attempt_succeeded(job(), http.OutboundResult(status_code=200, error="read timed out"), fmt)
    assert not send.attempt_succeeded(job(), http.OutboundResult(status_code=None, error="connection refused"), fmt)


def test_a_broker_attempt_succeeds_by_its_confirm():
    fmt = get_format(WebhookFormat.STANDARD)
    broker = job(url="amqp://broker.example.com/", exchange="events")
    assert send.attempt_succeeded(broker, http.OutboundResult(confirmed=True), fmt)
    assert not send.attempt_succeeded(broker, http.OutboundResult(confirmed=False), fmt)
    assert send.attempt_gone(broker, http.OutboundResult(status_code=410), fmt) == ""


def test_a_410_says_the_receiver_is_gone():
    fmt = get_format(WebhookFormat.STANDARD)
    assert send.attempt_gone(job(), http.OutboundResult(status_code=410), fmt) == "the receiver answered 410 Gone"
    assert send.attempt_gone(job(), http.OutboundResult(status_code=500), fmt) == ""


def test_the_attempt_log_keeps_that_a_credential_was_sent_never_its_value():
    stored = send.stored_headers({"Authorization": "token-123", "X-Agentbot-Signature": "t=1,v1=ab"})
    assert stored == {"Authorization": "[redacted]", "X-Agentbot-Signature": "t=1,v1=ab"}


# --- body_render ----------------------------------------------------------------------------------
def envelope(data: dict) -> Envelope:
    return Envelope.of("evt_1", "ticket.created", "site_1", NOW, data)


def test_a_body_over_the_size_limit_is_unsendable_for_good(settings):
    settings.AGENTBOT_RENDER_MAX_BYTES = 200
    result = send.body_render(get_format(WebhookFormat.STANDARD), envelope({"text": "x" * 500}))
    assert isinstance(result, send.Unsendable) and result.final
    assert "AGENTBOT_RENDER_MAX_BYTES" in result.reason


def test_a_body_within_the_limits_is_the_formats_bytes():
    fmt = get_format(WebhookFormat.STANDARD)
    event = envelope({"text": "hello"})
    assert send.body_render(fmt, event) == fmt.render(event)


# --- deliveries_send: the render budgets, with a real receiver ----------------------------------
DATA = {"conversation_id": "conv_1", "message_id": "msg_1", "sender_type": "visitor", "body": "hi"}


@pytest.fixture
def engine_stopped_afterwards():
    yield
    engine.engine_stop(timeout=5)


def publish_one(site) -> Delivery:
    with transaction.atomic():
        event, _ = event_publish(site=site, event_type="message.created", data=DATA)
    return event.deliveries.get()


@pytest.mark.django_db(transaction=True)
def test_a_body_over_the_size_budget_fails_at_once_with_the_reason(
    site, webhook_factory, receiver, settings, engine_stopped_afterwards
):
    settings.AGENTBOT_RENDER_MAX_BYTES = 100
    webhook_factory(site=site, url=receiver.url)
    delivery = publish_one(site)

    deliveries_send(ids=[delivery.id], token=delivery.lease_token)

    failed = Delivery.objects.get(pk=delivery.pk)
    assert (failed.status, failed.attempt_count) == ("failed", 1)
    (attempt,) = Attempt.objects.filter(delivery=delivery)
    assert "AGENTBOT_RENDER_MAX_BYTES" in attempt.error and not attempt.succeeded
    assert receiver.received == [], "nothing was sent"


@pytest.mark.django_db(transaction=True)
def test_a_render_over_the_time_budget_is_a_failed_attempt_and_moves_on_its_schedule(
    site, webhook_factory, receiver, settings, monkeypatch, engine_stopped_afterwards
):
    settings.AGENTBOT_RENDER_BUDGET = 0.05
    webhook_factory(site=site, url=receiver.url)
    delivery = publish_one(site)
    agentbot = formats.FORMATS["agentbot"]

    def slow_body(envelope):
        time.sleep(0.2)
        return agentbot.build_body(envelope)

    monkeypatch.setitem(formats.FORMATS, "agentbot", dataclasses.replace(agentbot, build_body=slow_body))

    deliveries_send(ids=[delivery.id], token=delivery.lease_token, wait=False)

    moved = Delivery.objects.get(pk=delivery.pk)
    assert (moved.status, moved.attempt_count, moved.schedule_position) == ("pending", 1, 1)
    assert moved.next_attempt_at > timezone.now() + timedelta(seconds=30), "the schedule's next step"
    (attempt,) = Attempt.objects.filter(delivery=delivery)
    assert "AGENTBOT_RENDER_BUDGET" in attempt.error
    assert receiver.received == []


# --- the sweep's claim and the record's lease, without a worker ------------------------------------
@pytest.mark.django_db(transaction=True)
def test_sweep_claims_only_due_deliveries_whose_lease_ran_out(site, webhook_factory):
    webhook = webhook_factory(site=site)
    due, leased, later = (publish_one(site) for _ in range(3))
    now = timezone.now()
    Delivery.objects.filter(pk=due.pk).update(leased_until=now - timedelta(seconds=1))
    Delivery.objects.filter(pk=later.pk).update(leased_until=None, next_attempt_at=now + timedelta(hours=1))
    assert webhook.deliveries.count() == 3

    ids, token = send.deliveries_claim_due(now=now, limit=10)

    assert ids == [due.id]
    assert Delivery.objects.get(pk=due.pk).lease_token == token
    assert Delivery.objects.get(pk=leased.pk).lease_token == leased.lease_token


@pytest.mark.django_db(transaction=True)
def test_an_attempt_is_logged_but_the_delivery_not_moved_once_its_lease_is_lost(site, webhook_factory, receiver):
    webhook_factory(site=site, url=receiver.url)
    delivery = publish_one(site)
    (taken,), _ = bulk.take(ids=[delivery.id], token=delivery.lease_token, until=timezone.now() + timedelta(minutes=1))
    job = send.delivery_render(taken, token=delivery.lease_token, now=timezone.now(), bodies={})
    Delivery.objects.filter(pk=delivery.pk).update(lease_token="someone-else")

    send.attempts_record([(job, http.post(job.sign()))])

    moved = Delivery.objects.get(pk=delivery.pk)
    assert (moved.status, moved.attempt_count, moved.lease_token) == ("pending", 0, "someone-else")
    (attempt,) = Attempt.objects.filter(delivery=delivery)
    assert attempt.status_code == 200 and attempt.request_headers["X-Agentbot-Delivery-Id"] == delivery.id


# --- a receiver that answers 200 and drips its body past the timeout ----------------------------
class DripServer:
    """Answers `200 OK` with a Content-Length of 100 at once, then one byte every 0.3 s."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
            for _ in range(100):
                if self.stop.is_set():
                    return
                try:
                    conn.sendall(b" ")
                except OSError:
                    return
                time.sleep(0.3)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.mark.django_db(transaction=True)
def test_a_200_whose_body_drips_past_the_timeout_is_a_failed_attempt_not_a_success(
    site, webhook_factory, settings, engine_stopped_afterwards
):
    settings.AGENTBOT_HTTP_TIMEOUT = 1
    drip = DripServer()
    try:
        webhook_factory(site=site, url=drip.url)
        with transaction.atomic():
            event, _ = event_publish(site=site, event_type="webhook.test", data={"message": "hi"})
        delivery = event.deliveries.get()

        deliveries_send(ids=[delivery.id], token=delivery.lease_token)

        (attempt,) = Attempt.objects.filter(delivery=delivery)
        assert attempt.status_code == 200
        assert attempt.error.startswith("timed out after 1 s reading the response body")
        assert attempt.succeeded is False
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempt_count) == ("pending", 1), "retried on its schedule"
    finally:
        drip.close()
