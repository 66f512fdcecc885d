"""Each delivery format against its product document: body bytes and key order, headers, signer,
success rule, retry schedule, and which events it carries."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook as StandardWebhook

from core import jsjson
from deliveries.formats import FORMATS, get_format
from deliveries.formats.types import Envelope, Signing
from subscriptions.event_types import CATALOGUE
from subscriptions.models import generate_secret

AGENT = "agent_abc123"
CREATED = datetime(2023, 11, 23, 18, 36, 21, 512302, tzinfo=UTC)


def render(format_name: str, event_type: str, data: dict) -> bytes:
    envelope = Envelope.of("evt_1", event_type, AGENT, CREATED, data)
    return jsjson.dumps(get_format(format_name).build_body(envelope))


def compact(value: dict) -> bytes:
    """The expected body, written in the document's key order."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def visitor_message(channel: str, source: dict, body: str, page_url: str | None = None) -> dict:
    return {
        "conversation_id": "conv_xyz",
        "message_id": "msg_1",
        "sender_type": "visitor",
        "body": body,
        "visitor_email": None,
        "visitor_name": None,
        "channel": channel,
        "source": source,
        "page_url": page_url,
    }


# --- chatzuri (seed 001) ----------------------------------------------------------------------
# The document's six message.received examples, with the payload fields in the document's order.
CHATZURI_EXAMPLES = [
    ("whatsapp", {"from": "+1234567890"}, "Hello, I need help with my order", None),
    ("telegram", {"chatId": 123456789, "username": "john_doe"}, "What are your opening hours?", None),
    ("facebook", {"senderId": "fb_user_123", "pageId": "fb_page_456"}, "Is this product still available?", None),
    ("instagram", {"senderId": "ig_user_789"}, "Do you ship internationally?", None),
    (
        "email",
        {"from": "customer@example.com", "subject": "Order inquiry"},
        "I placed an order yesterday and have not received a confirmation.",
        None,
    ),
    ("web", {"sessionId": "session_abc"}, "Hi, I need help!", "https://yoursite.com/pricing"),
]


@pytest.mark.parametrize(("channel", "source", "text", "page_url"), CHATZURI_EXAMPLES, ids=[c[0] for c in CHATZURI_EXAMPLES])
def test_chatzuri_visitor_message_is_the_documents_message_received(channel, source, text, page_url):
    payload = {**source, "message": text, "conversationId": "conv_xyz"}
    if channel == "web":
        payload["pageUrl"] = page_url
    expected = {"eventType": "message.received", "channel": channel, "agentId": AGENT, "payload": payload}

    assert render("chatzuri", "message.created", visitor_message(channel, source, text, page_url)) == compact(expected)


def test_chatzuri_message_without_channel_identifiers_still_has_every_documented_field():
    body = json.loads(render("chatzuri", "message.created", visitor_message("facebook", {}, "Hi")))
    assert body["payload"] == {"senderId": None, "pageId": None, "message": "Hi", "conversationId": "conv_xyz"}


def test_chatzuri_lead_submit_carries_the_documents_customer_fields():
    lead = {**CATALOGUE["lead.submit"].example, "phone": None}
    expected = {
        "eventType": "lead.submit",
        "agentId": AGENT,
        "payload": {
            "conversationId": "conv_xyz",
            "customerEmail": "david@example.com",
            "customerName": "David Garcia",
            "customerPhone": None,
        },
    }
    assert render("chatzuri", "lead.submit", lead) == compact(expected)


def test_chatzuri_agent_message_keeps_its_name_data_and_channel():
    data = {**visitor_message("web", {"sessionId": "s1"}, "We open at 9"), "sender_type": "ai"}
    expected = {"eventType": "message.created", "channel": "web", "agentId": AGENT, "payload": data}
    assert render("chatzuri", "message.created", data) == compact(expected)


def test_chatzuri_signature_is_hex_hmac_sha1_of_the_body_with_the_old_secret_during_grace():
    new, old = generate_secret(), generate_secret()
    body = render("chatzuri", "webhook.test", CATALOGUE["webhook.test"].example)
    headers = get_format("chatzuri").headers(Signing("dlv_1", "webhook.test", body, [new, old], 1715968923))
    assert headers["x-chatzuri-signature"] == hmac.new(old.encode(), body, hashlib.sha1).hexdigest()


# --- leads (seed 004) -------------------------------------------------------------------------
def test_leads_lead_is_the_documents_flat_record_in_its_key_order():
    data = {
        "lead_id": "lead_1",
        "conversation_id": "conv_xyz",
        "session_id": 31305,
        "first_name": "David",
        "last_name": "Garcia",
        "email": "test@qq.com",
        "phone": None,
        "content": "test",
        "uri": "www.google.com",
    }
    expected = {
        "SerialNumber": AGENT,
        "Type": "Lead",
        "FirstName": "David",
        "LastName": "Garcia",
        "Email": "test@qq.com",
        "PhoneNumber": "",
        "CreateTime": "2023-11-23T18:36:21.512302Z",
        "Content": "test",
        "SessionID": 31305,
        "URI": "www.google.com",
    }
    assert render("leads", "lead.submit", data) == compact(expected)


def test_leads_appointment_has_type_appointment_and_unknown_values_empty():
    body = json.loads(render("leads", "appointment.created", {"appointment_id": "apt_1", "email": "a@b.co"}))
    assert body["Type"] == "Appointment"
    assert (body["FirstName"], body["PhoneNumber"], body["URI"], body["SessionID"]) == ("", "", "", 0)


@pytest.mark.parametrize(
    ("status", "body", "succeeded"),
    [
        (200, b'{"status":"success"}', True),
        (200, b'{"status":"Success: test request received"}', True),
        (201, b'{ "status": "success" }\n', True),
        (200, b'{"status":"ok"}', False),
        (200, b'{"status":"Success"}', False),
        (200, b'{"status":"SUCCESS"}', False),
        (200, b'{"status":"success","extra":1}', False),
        (200, b'"success"', False),
        (200, b"", False),
        (200, b"<html>ok</html>", False),
        (200, b"[" * 5000, False),
        (500, b'{"status":"success"}', False),
        (302, b'{"status":"success"}', False),
    ],
)
def test_leads_succeeds_only_on_2xx_with_one_of_the_two_documented_bodies(status, body, succeeded):
    assert get_format("leads").is_success(status, body) is succeeded


def test_leads_retries_after_one_and_three_minutes_the_others_on_the_agentbot_schedule():
    assert get_format("leads").retry_schedule() == (0, 60, 180)
    for name in ("agentbot", "chatzuri", "standard"):
        assert get_format(name).retry_schedule() == (0, 60, 300, 1800, 10800)


def test_retry_schedule_override_replaces_every_formats_schedule(settings):
    settings.AGENTBOT_RETRY_SCHEDULE = [0.0, 1.0, 2.0]
    assert {get_format(name).retry_schedule() for name in FORMATS} == {(0.0, 1.0, 2.0)}


def test_leads_carries_only_leads_appointments_and_the_test_ping():
    carried = {name for name in CATALOGUE if get_format("leads").carries(name)}
    assert carried == {"lead.submit", "appointment.created", "webhook.test"}
    assert all(get_format(f).carries(name) for f in ("agentbot", "chatzuri", "standard") for name in CATALOGUE)


# --- agentbot (seed 002) and standard ---------------------------------------------------------
def test_agentbot_body_is_the_documents_envelope():
    data = CATALOGUE["message.created"].example
    expected = {"event": "message.created", "timestamp": "2023-11-23T18:36:21Z", "site_id": AGENT, "data": data}
    assert render("agentbot", "message.created", data) == compact(expected)


def test_timestamped_signatures_list_the_new_secret_before_the_old():
    new, old = generate_secret(), generate_secret()
    body = render("leads", "lead.submit", CATALOGUE["lead.submit"].example)
    header = get_format("leads").headers(Signing("dlv_1", "lead.submit", body, [new, old], 1492774577))
    t, v1_new, v1_old = header["X-Webhook-Signature"].split(",")
    assert t == "t=1492774577"
    for part, secret in ((v1_new, new), (v1_old, old)):
        assert part == "v1=" + hmac.new(secret.encode(), b"1492774577." + body, hashlib.sha256).hexdigest()


def test_standard_body_and_headers_verify_with_the_standardwebhooks_package():
    secret = generate_secret()
    body = render("standard", "ticket.created", CATALOGUE["ticket.created"].example)
    now = int(datetime.now(UTC).timestamp())
    headers = get_format("standard").headers(Signing("dlv_1", "ticket.created", body, [secret], now))

    assert StandardWebhook(secret).verify(body, headers) == {
        "type": "ticket.created",
        "timestamp": "2023-11-23T18:36:21Z",
        "data": CATALOGUE["ticket.created"].example,
    }
    assert headers["webhook-id"] == "dlv_1" and headers["webhook-signature"].startswith("v1,")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"dlv_1.{now}.".encode() + body, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"


# --- robustness -------------------------------------------------------------------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
event_data = st.dictionaries(
    st.sampled_from(
        [
            "conversation_id",
            "sender_type",
            "body",
            "channel",
            "source",
            "page_url",
            "first_name",
            "last_name",
            "email",
            "phone",
            "content",
            "uri",
            "session_id",
            "message",
        ]
    ),
    json_values | st.sampled_from(["visitor", "telegram", "web", "sms"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_type=st.sampled_from(list(CATALOGUE)), data=event_data, format_name=st.sampled_from(list(FORMATS)))
def test_every_format_renders_any_published_data_without_failing(event_type, data, format_name):
    """POST /events accepts any JSON object, so a body builder must never crash a worker."""
    body = render(format_name, event_type, data)
    assert isinstance(json.loads(body), dict)
