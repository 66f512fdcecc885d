"""The chat formats' reading of a failed answer: gone for good (the webhook is disabled, the delivery
ends) or worth another attempt."""

import json
from datetime import UTC, datetime

import pytest

from deliveries.formats import get_format
from deliveries.services.send import delivery_schedule_next

GONE = [
    ("slack", 404, b"no_service", "Slack answered 404 no_service"),
    ("slack", 404, b"channel_not_found\n", "Slack answered 404 channel_not_found"),
    ("slack", 410, b"channel_is_archived", "Slack answered 410 channel_is_archived"),
    ("slack", 410, b"anything", "the receiver answered 410 Gone"),
    ("discord", 404, json.dumps({"message": "Unknown Webhook", "code": 10015}).encode(), "Discord answered 404 Unknown Webhook"),
    ("discord", 401, b'{"message": "Invalid Webhook Token", "code": 50027}', "Discord answered 401"),
    ("discord", 410, b"", "the receiver answered 410 Gone"),
    ("agentbot", 410, b"", "the receiver answered 410 Gone"),
    ("teams", 410, b"", "the receiver answered 410 Gone"),
]
TEMPORARY = [
    ("slack", 429, b"rate_limited"),
    ("slack", 500, b"no_service"),
    ("slack", 404, b"<html>Not Found</html>"),
    ("slack", 403, b"action_prohibited"),
    ("discord", 404, b'{"message": "404: Not Found", "code": 0}'),
    ("discord", 404, b"not json"),
    ("discord", 429, b'{"retry_after": 1}'),
    ("discord", 503, b""),
    ("agentbot", 404, b""),
    ("agentbot", 401, b""),
]


@pytest.mark.parametrize("fmt, status, body, reason", GONE)
def test_a_platforms_permanent_answer_is_read_as_gone_with_its_reason(fmt, status, body, reason):
    assert get_format(fmt).gone(status, body).startswith(reason)


@pytest.mark.parametrize("fmt, status, body", TEMPORARY)
def test_a_temporary_answer_is_not_gone(fmt, status, body):
    assert get_format(fmt).gone(status, body) == ""


def test_a_gone_answer_ends_the_delivery_where_the_schedule_would_retry():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    retried = delivery_schedule_next(format_name="slack", schedule_position=0, ok=False, now=now, status_code=404)
    ended = delivery_schedule_next(format_name="slack", schedule_position=0, ok=False, now=now, status_code=404, gone=True)
    assert retried[0] == "pending" and retried[2] is not None
    assert ended == ("failed", 1, None)
