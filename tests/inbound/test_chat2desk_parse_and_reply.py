"""Chat2Desk's connector without a server: what its payloads parse to (seed 000) and its reply
format (the agent's reply as Chat2Desk's API takes it)."""

import json
from datetime import UTC, datetime

import pytest

from core import jsjson
from deliveries.formats import get_format
from deliveries.formats.types import Envelope, Signing
from inbound.connectors.chat2desk import parse as chat2desk
from subscriptions.event_types import CHANNEL_REPLY, MESSAGE_CREATED, WEBHOOK_TEST

# --- chat2desk.parse ----------------------------------------------------------------------------
SEED_MESSAGE = {
    "text": "Hello, I need help with my order",
    "client_id": "12345678",
    "channel_id": "987654",
    "transport": "whatsapp",
}


def test_the_seeds_message_payload_is_a_message():
    assert chat2desk.parse(SEED_MESSAGE) == chat2desk.Parsed("message", SEED_MESSAGE)


def test_an_inbox_hook_keeps_its_ids_and_message_id_and_drops_the_rest():
    parsed = chat2desk.parse(
        {
            "hook_type": "inbox",
            "type": "from_client",
            "text": "Oi",
            "client_id": 42,
            "dialog_id": 7,
            "request_id": 9,
            "message_id": 555,
            "photo": None,
            "extra": {"a": 1},
        }
    )
    assert parsed.kind == "message" and parsed.external_id == "555"
    assert parsed.payload == {"text": "Oi", "client_id": 42, "dialog_id": 7, "request_id": 9}


@pytest.mark.parametrize(
    "transport, client, identity",
    [
        (
            "whatsapp",
            {"id": 1, "phone": "79161234567", "name": "Ada"},
            {"source": {"from": "+79161234567"}, "visitor": {"name": "Ada", "phone": "+79161234567"}},
        ),
        (
            "wa_business",
            {"phone": "", "client_phone": "+1 (234) 567-890"},
            {"source": {"from": "+1234567890"}, "visitor": {"phone": "+1234567890"}},
        ),
        ("whatsapp", {"phone": "[wa] 1234567890"}, {"source": {"from": "+1234567890"}, "visitor": {"phone": "+1234567890"}}),
        (
            "telegram",
            {"phone": "[tg] 807892", "name": "Peter", "username": "@peter"},
            {"source": {"chatId": 807892, "username": "peter"}, "visitor": {"name": "Peter"}},
        ),
        ("fb", {"phone": "[fb] fb_user_123"}, {"source": {"senderId": "fb_user_123"}}),
        ("viber", {"phone": "79161234567"}, {"visitor": {"phone": "+79161234567"}}),  # viber has no source fields
        ("telegram", {"phone": None, "name": ""}, {}),
    ],
)
def test_chat2desks_client_fills_the_channels_identifiers_and_the_visitor(transport, client, identity):
    parsed = chat2desk.parse({**SEED_MESSAGE, "transport": transport, "client": client})
    assert {k: parsed.payload[k] for k in ("source", "visitor") if k in parsed.payload} == identity


def test_a_chat2desk_client_that_is_not_an_object_is_refused_naming_it():
    with pytest.raises(chat2desk.PayloadError, match="client must be an object"):
        chat2desk.parse({**SEED_MESSAGE, "client": "Ada"})
    with pytest.raises(chat2desk.PayloadError, match="client.name must be a string"):
        chat2desk.parse({**SEED_MESSAGE, "client": {"name": "x" * 201}})


@pytest.mark.parametrize(
    "body, payload",
    [
        (
            {"hook_type": "close_dialog", "request_id": 12345, "dialog_id": 67890},
            {"action": "session_close", "request_id": 12345, "dialog_id": 67890},
        ),
        ({"hook_type": "close_request", "request_id": 12345}, {"action": "session_close", "request_id": 12345}),
        (
            {"hook_type": "dialog_transferred", "request_id": 1, "dialog_id": 2, "client_id": "c1"},
            {"action": "session_transfer_external", "request_id": 1, "dialog_id": 2, "client_id": "c1"},
        ),
    ],
)
def test_status_hooks_map_to_their_internal_action(body, payload):
    parsed = chat2desk.parse(body)
    assert parsed.kind == "status" and parsed.external_id == ""
    assert parsed.payload == {"hook_type": body["hook_type"], **payload}


@pytest.mark.parametrize(
    "body",
    [
        {"hook_type": "new_client", "client_id": 1},
        {"hook_type": "close_dialog_by_timeout"},
        {"hook_type": "inbox", "type": "to_client", "text": "Our reply", "client_id": "1"},
        {"type": "system", "text": "Operator joined", "client_id": "1"},
    ],
)
def test_what_agentbot_does_not_act_on_is_ignored_with_a_reason(body):
    parsed = chat2desk.parse(body)
    assert parsed.kind == "ignored" and parsed.payload == {}
    assert repr(body.get("type") if "type" in body else body["hook_type"]) in parsed.reason


@pytest.mark.parametrize(
    "body, message",
    [
        ({"client_id": "1"}, "text is required"),
        ({"text": "Hi"}, "client_id is required"),
        ({"text": "Hi", "client_id": 1.5}, "client_id must be"),
        ({"text": "Hi", "client_id": 2**53}, "client_id must be"),
        ({"text": "Hi", "client_id": "1", "request_id": "9"}, "request_id must be a number"),
        ({"text": "a\x00b", "client_id": "1"}, "text must not contain NUL"),
        ({"text": "Hi", "client_id": "\ud800"}, "client_id must not contain"),
        ({"hook_type": "close_dialog"}, "request_id is required"),
        ({"hook_type": "close_dialog", "request_id": "1"}, "request_id must be a number"),
        ({"hook_type": "close_dialog", "request_id": False}, "request_id must be a number"),
        ({"hook_type": "close_dialog", "request_id": 1, "dialog_id": 2.0}, "dialog_id must be a number"),
        ({"hook_type": ["inbox"]}, "hook_type must be a string"),
    ],
)
def test_payloads_agentbot_cannot_use_raise_an_error_naming_the_field(body, message):
    with pytest.raises(chat2desk.PayloadError) as caught:
        chat2desk.parse(body)
    assert str(caught.value).startswith(message), str(caught.value)


def test_the_largest_safe_integer_is_still_a_number():
    parsed = chat2desk.parse({"hook_type": "close_dialog", "request_id": 2**53 - 1, "dialog_id": -(2**53 - 1)})
    assert parsed.payload["request_id"] == 2**53 - 1


@pytest.mark.parametrize(
    "transport, channel",
    [
        ("whatsapp", "whatsapp"),
        ("wa_dialog", "whatsapp"),
        ("wa_business", "whatsapp"),
        ("telegram", "telegram"),
        ("insta_local", "instagram"),
        ("fb", "facebook"),
        ("vk", "vk"),
        ("sms", "sms"),
        ("line", "other"),
        ("", "other"),
        (None, "other"),
    ],
)
def test_channel_of_a_transport(transport, channel):
    assert chat2desk.channel_of(transport) == channel


# --- the chat2desk delivery format --------------------------------------------------------------
CHAT2DESK = get_format("chat2desk")
AT = datetime(2026, 5, 21, 17, 45, 12, tzinfo=UTC)


def reply_body(data: dict) -> dict:
    return CHAT2DESK.build_body(Envelope.of("evt_1", CHANNEL_REPLY.name, "site_1", AT, data))


def test_a_reply_is_chat2desks_message_to_the_client():
    body = reply_body(CHANNEL_REPLY.example)
    assert body == {
        "client_id": "12345678",
        "text": "Our opening hours are 9:00 to 18:00.",
        "type": "to_client",
        "transport": "whatsapp",
        "channel_id": "987654",
    }
    assert json.loads(jsjson.dumps(body)) == body


@pytest.mark.parametrize(
    "recipient, expected",
    [
        ({"client_id": 42}, {"client_id": 42, "text": "Hi", "type": "to_client"}),
        ({"client_id": "7", "transport": "", "channel_id": None}, {"client_id": "7", "text": "Hi", "type": "to_client"}),
        ("not an object", {"client_id": None, "text": "Hi", "type": "to_client"}),
    ],
)
def test_a_reply_sends_only_the_addressing_it_has(recipient, expected):
    assert reply_body({**CHANNEL_REPLY.example, "text": "Hi", "recipient": recipient}) == expected


def test_the_api_token_is_the_authorization_header():
    signing = Signing("dlv_1", CHANNEL_REPLY.name, b"{}", ["c2d-token", "old-token"], 1_700_000_000)
    assert CHAT2DESK.sign(signing) == {"Authorization": "c2d-token"}
    headers = CHAT2DESK.headers(signing)
    assert headers["Authorization"] == "c2d-token" and headers["Content-Type"] == "application/json"
    assert headers["X-Agentbot-Delivery-Id"] == "dlv_1"


@pytest.mark.parametrize(
    "status, body, success",
    [
        (200, b'{"status": "success", "data": {"message_id": 1}}', True),
        (201, b"", True),
        (200, b"OK", True),
        (200, b'{"status": "error", "message": "client not found"}', False),
        (200, b'["status", "error"]', True),
        (400, b'{"status": "success"}', False),
        (500, b"", False),
        (302, b"", False),
    ],
)
def test_success_is_2xx_unless_chat2desk_says_error(status, body, success):
    assert CHAT2DESK.is_success(status, body) is success


@pytest.mark.parametrize(
    "event_type, carried", [(CHANNEL_REPLY.name, True), (MESSAGE_CREATED.name, False), (WEBHOOK_TEST.name, False)]
)
def test_the_format_carries_replies_only(event_type, carried):
    assert CHAT2DESK.carries(event_type) is carried
