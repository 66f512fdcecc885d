"""Structured logs: one JSON object a line, the delivery's ids as fields, never a secret or a body."""

import io
import json
import logging
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import transaction

from core.logging import JsonFormatter, log_delivery
from deliveries.models import Delivery
from deliveries.services.publish import event_publish

BODY_MARKER = "private-visitor-words-4711"


@contextmanager
def json_lines(logger_name: str = ""):
    """Collect what `logger_name` (and below) logs, formatted as production formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(logger_name)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    lines: list[dict] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())


def test_settings_write_json_logs_by_default():
    assert settings.LOGGING["handlers"]["console"]["formatter"] == "json"
    assert settings.LOGGING["formatters"]["json"]["()"] == "core.logging.JsonFormatter"


def test_a_delivery_line_carries_the_three_ids_and_small_facts_but_no_secret_or_body():
    logger = logging.getLogger("tests.delivery")
    with json_lines("tests.delivery") as lines:
        log_delivery(
            logger,
            logging.WARNING,
            "attempt failed",
            delivery_id="dlv_1",
            event_id="evt_1",
            webhook_id="wh_1",
            attempt=2,
            status_code=503,
            duration_ms=41,
            secret="whsec_c2VjcmV0c2VjcmV0c2VjcmV0",
            body=b"{}",
            response_body="<html>",
            headers={"X-Agentbot-Signature": "t=1,v1=ab"},
            message="clash",
            name="clash",
        )
    (line,) = lines
    assert line["message"] == "attempt failed" and line["level"] == "WARNING" and line["logger"] == "tests.delivery"
    assert (line["delivery_id"], line["event_id"], line["webhook_id"]) == ("dlv_1", "evt_1", "wh_1")
    assert (line["attempt"], line["status_code"], line["duration_ms"]) == (2, 503, 41)
    for name in ("secret", "body", "response_body", "headers"):
        assert name not in line
    assert "whsec_" not in json.dumps(line) and "Signature" not in json.dumps(line)


def test_a_secret_in_a_message_or_an_exception_is_masked():
    logger = logging.getLogger("tests.careless")
    secret = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    with json_lines("tests.careless") as lines:
        logger.info("rotated to %s", secret)
        try:
            raise ValueError(f"bad key {secret}")
        except ValueError:
            logger.exception("failed")
    assert secret not in json.dumps(lines)
    assert lines[0]["message"] == "rotated to whsec_[redacted]"
    assert "ValueError: bad key whsec_[redacted]" in lines[1]["exception"]


def test_retrying_from_the_admin_logs_the_delivery_with_its_ids_and_not_its_secret(admin_client, site, webhook_factory):
    webhook = webhook_factory(site=site)
    with transaction.atomic():
        event, _ = event_publish(
            site=site,
            event_type="message.created",
            data={
                "conversation_id": "conv_1",
                "message_id": "msg_1",
                "sender_type": "visitor",
                "body": BODY_MARKER,
                "visitor_email": None,
                "visitor_name": None,
            },
        )
    delivery = event.deliveries.get()
    Delivery.objects.filter(pk=delivery.pk).update(status="failed", leased_until=None, lease_token=None)

    with json_lines() as lines:
        admin_client.post(f"/admin/deliveries/delivery/{delivery.pk}/act/retry/")
    (line,) = [line for line in lines if line.get("delivery_id") == delivery.id]
    assert line["event_id"] == event.id and line["webhook_id"] == webhook.id and line["operator"] == "admin"
    text = json.dumps(lines)
    assert webhook.secret not in text and BODY_MARKER not in text


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_worker_logs_json_lines_without_the_secret_or_the_body(site, webhook_factory, receiver, workers):
    webhook = webhook_factory(site=site, url=receiver.url, events=["message.created"])
    worker = workers.start(LOG_LEVEL="DEBUG")
    with transaction.atomic():
        event, _ = event_publish(
            site=site,
            event_type="message.created",
            data={
                "conversation_id": "conv_1",
                "message_id": "msg_1",
                "sender_type": "visitor",
                "body": BODY_MARKER,
                "visitor_email": None,
                "visitor_name": None,
            },
        )
    receiver.wait_for(1)
    delivery = event.deliveries.get()
    workers.stop_all()

    text = worker.log_path.read_text()
    assert webhook.secret not in text and BODY_MARKER not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(line["message"].endswith(" ready.") for line in lines)
    for line in lines:
        ours = line["logger"].split(".")[0] in {"agentbot", "deliveries", "subscriptions"}
        if ours and delivery.id in json.dumps(line):  # a line about this delivery names its event and webhook too
            assert (line.get("delivery_id"), line.get("event_id"), line.get("webhook_id")) == (
                delivery.id,
                event.id,
                webhook.id,
            ), line
