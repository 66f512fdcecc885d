"""What Chat2Desk posts to us: a client's message (`text, client_id, channel_id,
transport`) or, when a human operator acts on a dialog, a status event named by `hook_type`.
"""

import re

from core.jsjson import MAX_SAFE_INTEGER
from core.text import text_is_storable
from core.vocabulary import Channel
from inbound.parsed import Parsed, PayloadError

# hook_type → the internal action (the inbound webhooks document's table).
SESSION_CLOSE = "session_close"
SESSION_TRANSFER_EXTERNAL = "session_transfer_external"
STATUS_HOOKS = {
    "close_dialog": SESSION_CLOSE,
    "close_request": SESSION_CLOSE,
    "dialog_transferred": SESSION_TRANSFER_EXTERNAL,
}
# A client's message comes without a hook_type (the document's payload) or as Chat2Desk's `inbox`.
MESSAGE_HOOKS = (None, "inbox")
# What the register-webhook helper subscribes to.
REGISTERED_EVENTS = ["inbox", *STATUS_HOOKS]
# Chat2Desk transports that are not one of Agentbot's channels by name.
TRANSPORT_CHANNELS = {"wa_dialog": "whatsapp", "wa_business": "whatsapp", "fb": "facebook", "insta_local": "instagram"}
MAX_TEXT = 20_000


def channel_of(transport: str | None) -> str:
    """The conversation's channel for a Chat2Desk transport; `other` when Agentbot has no such channel."""
    if not transport:
        return "other"
    name = TRANSPORT_CHANNELS.get(transport, transport)
    return name if name in Channel.values else Channel.OTHER


# Ids come back in the reply's recipient, which must read the same in JavaScript: integers only,
# and only those a JavaScript number holds exactly.
NUMBER = f"an integer between -{MAX_SAFE_INTEGER} and {MAX_SAFE_INTEGER}"


def _is_number(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_SAFE_INTEGER


def _identifier(payload: dict, name: str, *, required: bool) -> str | int | None:
    value = payload.get(name)
    if value is None or value == "":
        if required:
            raise PayloadError(f"{name} is required")
        return None
    if not (_is_number(value) or isinstance(value, str)) or (isinstance(value, str) and len(value) > 200):
        raise PayloadError(f"{name} must be a string of at most 200 characters or a number ({NUMBER})")
    if isinstance(value, str) and not text_is_storable(value):
        raise PayloadError(f"{name} must not contain NUL or unpaired surrogate characters")
    return value


def _optional_number(payload: dict, name: str) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if not _is_number(value):
        raise PayloadError(f"{name} must be a number ({NUMBER})")
    return value


def delivery_id(body: dict, request_id: str = "") -> str:
    """What identifies this delivery, so that the same delivery sent again is stored once: the
    message's `message_id` (kept as it is), else an `event_id`, else the sender's `X-Request-Id`
    header; "" when there is none. A status event's `request_id` names Chat2Desk's request (the
    ticket), not the delivery: a close sent again for it is a new event and applied again."""
    message_id = _identifier(body, "message_id", required=False) if body.get("hook_type") in MESSAGE_HOOKS else None
    if message_id is not None:
        return str(message_id)
    event_id = _identifier(body, "event_id", required=False)
    if event_id is not None:
        return f"event:{event_id}"
    request_id = request_id.strip()
    if request_id and len(request_id) <= 200 and request_id.isprintable():
        return f"request:{request_id}"
    return ""


def parse(body: dict, *, request_id: str = "") -> Parsed:
    """The payload as Agentbot stores it; `request_id` is the request's X-Request-Id header."""
    parsed = _parse(body)
    if parsed.kind == "ignored" or parsed.external_id:
        return parsed
    return Parsed(parsed.kind, parsed.payload, external_id=delivery_id(body, request_id), reason=parsed.reason)


def _parse(body: dict) -> Parsed:
    hook_type = body.get("hook_type")
    if hook_type is not None and not isinstance(hook_type, str):
        raise PayloadError("hook_type must be a string")
    if hook_type in STATUS_HOOKS:
        return _parse_status(body, hook_type)
    if hook_type not in MESSAGE_HOOKS:
        return Parsed("ignored", reason=f"hook_type {hook_type!r} is not one Agentbot acts on")
    message_type = body.get("type")
    if message_type not in (None, "from_client"):
        # Chat2Desk also reports what is sent to the client (our replies, an operator's messages).
        return Parsed("ignored", reason=f"a message of type {message_type!r} is not from the client")
    return _parse_message(body)


def _parse_status(body: dict, hook_type: str) -> Parsed:
    request_id = body.get("request_id")
    if request_id is None:
        raise PayloadError(f"request_id is required on a {hook_type} event")
    if not _is_number(request_id):
        raise PayloadError(f"request_id must be a number ({NUMBER})")
    payload = {"hook_type": hook_type, "action": STATUS_HOOKS[hook_type], "request_id": request_id}
    dialog_id = _optional_number(body, "dialog_id")
    if dialog_id is not None:
        payload["dialog_id"] = dialog_id
    client_id = _identifier(body, "client_id", required=False)
    if client_id is not None:
        payload["client_id"] = client_id
    return Parsed("status", payload)


def _parse_message(body: dict) -> Parsed:
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise PayloadError("text is required: the client's message, a non-empty string")
    if len(text) > MAX_TEXT:
        raise PayloadError(f"text is {len(text)} characters; the limit is {MAX_TEXT}")
    if not text_is_storable(text):
        raise PayloadError("text must not contain NUL or unpaired surrogate characters")
    payload = {"text": text, "client_id": _identifier(body, "client_id", required=True)}
    for name in ("channel_id", "transport"):
        value = _identifier(body, name, required=False)
        if value is not None:
            payload[name] = value
    for name in ("dialog_id", "request_id"):
        value = _optional_number(body, name)
        if value is not None:
            payload[name] = value
    payload.update(_client_identity(body, channel_of(payload.get("transport"))))
    message_id = _identifier(body, "message_id", required=False)
    return Parsed("message", payload, external_id=str(message_id) if message_id is not None else "")


# Chat2Desk's `client.phone` is the phone number on phone transports (WhatsApp, SMS, Viber) and
# the transport's own id of the client elsewhere, as `[tg] 807892`.
TRANSPORT_ID = re.compile(r"^\[(?P<transport>[a-z_]+)\]\s*(?P<id>\S+)$")
PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{4,30}$")


def _client_identity(body: dict, channel: str) -> dict:
    """What Chat2Desk's `client` object tells about the visitor: the conversation's `source` (the
    channel's identifiers, the Chatzuri document's `from`, `chatId`, `senderId`) and `visitor` {name, phone}."""
    client = body.get("client")
    if client is None:
        return {}
    if not isinstance(client, dict):
        raise PayloadError("client must be an object (Chat2Desk's client: id, phone, name, …)")
    try:
        known = {name: _identifier(client, name, required=False) for name in ("phone", "client_phone", "name", "username")}
    except PayloadError as exc:
        raise PayloadError(f"client.{exc}") from None
    texts = {name: str(value) for name, value in known.items() if value is not None}
    phone, transport_id = None, None
    for value in (texts.get("client_phone"), texts.get("phone")):
        if value and PHONE.match(value) and phone is None:
            phone = "+" + re.sub(r"[^0-9]", "", value)
        elif value and (found := TRANSPORT_ID.match(value)) and transport_id is None:
            transport_id = found["id"]
    if phone is None and channel == "whatsapp" and transport_id and transport_id.isdigit():
        phone = "+" + transport_id  # WhatsApp's own id of a client is the phone number
    source: dict = {}
    if channel == "whatsapp" and phone:
        source["from"] = phone
    elif channel == "telegram":
        if transport_id:
            source["chatId"] = int(transport_id) if transport_id.isdigit() and len(transport_id) < 16 else transport_id
        if texts.get("username"):
            source["username"] = texts["username"].removeprefix("@")
    elif channel in ("facebook", "instagram") and transport_id:
        source["senderId"] = transport_id
    visitor = {key: value for key, value in (("name", texts.get("name", "")[:200]), ("phone", phone or "")) if value}
    return {**({"source": source} if source else {}), **({"visitor": visitor} if visitor else {})}
