"""deliveries/services/send.py, function by function: what an attempt's answer means (success,
gone, the next attempt), what is stored of it, the render budget, and outcomes_store's fallback to
row by row. The worker's whole path with real parts is in test_engine.py and test_end_to_end.py."""

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import DataError, transaction
from django.utils import timezone

from deliveries import bulk, engine, formats, http
from deliveries.format_types import Envelope
from deliveries.formats import get_format
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
