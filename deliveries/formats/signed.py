"""The signed formats: the Agentbot webhook format, Chatzuri, the Leads webhook and Standard
Webhooks. Each is a body builder, a signer, a success rule and a retry schedule, put together as a
`DeliveryFormat` in `FORMATS`; deliveries/formats/__init__.py registers them by name.
"""

import base64
import hmac
import json
from datetime import UTC

from deliveries.formats.types import (
    DEFAULT_SCHEDULE,
    MINUTE,
    DeliveryFormat,
    Envelope,
    Signing,
    is_2xx,
    iso_utc,
    object_or_empty,
    text_or_none,
)
from subscriptions.event_types import (
    APPOINTMENT_CREATED,
    CHANNEL_SOURCE_FIELDS,
    LEAD_SUBMIT,
    MESSAGE_CREATED,
    MESSAGE_RECEIVED,
    WEBHOOK_TEST,
)
from subscriptions.models import SECRET_PREFIX, WebhookFormat

LEADS_SCHEDULE = (0.0, 1 * MINUTE, 3 * MINUTE)


def hmac_hex(algorithm: str, key: str, message: bytes) -> str:
    return hmac.digest(key.encode("utf-8"), message, algorithm).hex()


def timestamped_signature(s: Signing, *, old_first: bool = False) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, one v1 per live secret: newest
    first, or during a grace period the old secret's first (`old_first`). The documents' receivers
    read only one v1 (the Agentbot webhook format's document the first, the Leads webhook document the last), so each format puts the old
    secret's where its document's receiver looks: one not yet switched keeps verifying until the
    grace period ends."""
    secrets = s.secrets[::-1] if old_first else s.secrets
    signed = f"{s.timestamp}.".encode() + s.body
    return ",".join([f"t={s.timestamp}"] + [f"v1={hmac_hex('sha256', k, signed)}" for k in secrets])


# --- agentbot (the Agentbot webhook format) ---------------------------------------------------
def agentbot_body(e: Envelope) -> dict:
    return {"event": e.event_type, "timestamp": iso_utc(e.created_at), "site_id": e.site_id, "data": e.data_fragment}


def agentbot_sign(s: Signing) -> dict[str, str]:
    return {
        "X-Agentbot-Event": s.event_type,
        # The Agentbot webhook format's document's receiver reads the first v1: `v1=<old>,v1=<new>` during a grace period.
        "X-Agentbot-Signature": timestamped_signature(s, old_first=True),
    }


# --- chatzuri (the Chatzuri format) -----------------------------------------------------------
CHATZURI_MESSAGE_RECEIVED = MESSAGE_RECEIVED
# A message.created without a channel comes from the website widget, Agentbot's own channel.
CHATZURI_DEFAULT_CHANNEL = "web"


def chatzuri_envelope(event_type: str, channel, agent_id: str, payload: dict) -> dict:
    """`{eventType, channel?, agentId, payload}`, in the document's key order."""
    envelope: dict = {"eventType": event_type}
    if isinstance(channel, str) and channel:
        envelope["channel"] = channel
    return {**envelope, "agentId": agent_id, "payload": payload}


def chatzuri_message_received(e: Envelope) -> dict:
    """A visitor's message with the channel's own identifiers, as the document shows per channel."""
    data = e.data
    channel = text_or_none(data.get("channel")) or CHATZURI_DEFAULT_CHANNEL
    source = object_or_empty(data.get("source"))
    payload = {name: source.get(name) for name in CHANNEL_SOURCE_FIELDS.get(channel, {})}
    payload["message"] = data.get("body")
    payload["conversationId"] = data.get("conversation_id")
    if channel == "web":
        payload["pageUrl"] = data.get("page_url")
    return chatzuri_envelope(CHATZURI_MESSAGE_RECEIVED, channel, e.site_id, payload)


def chatzuri_lead_submit(e: Envelope) -> dict:
    data = e.data
    names = [text_or_none(data.get(part)) for part in ("first_name", "last_name")]
    payload = {
        "conversationId": data.get("conversation_id"),
        "customerEmail": text_or_none(data.get("email")),
        "customerName": " ".join(name for name in names if name) or None,
        "customerPhone": text_or_none(data.get("phone")),
    }
    return chatzuri_envelope(e.event_type, None, e.site_id, payload)


def chatzuri_body(e: Envelope) -> dict:
    if e.event_type == MESSAGE_CREATED.name and e.data.get("sender_type") == "visitor":
        return chatzuri_message_received(e)
    if e.event_type == LEAD_SUBMIT.name:
        return chatzuri_lead_submit(e)
    # Events the document does not describe keep their name and data, and their channel if any.
    return chatzuri_envelope(e.event_type, e.data.get("channel"), e.site_id, e.data_fragment)


def chatzuri_sign(s: Signing) -> dict[str, str]:
    # The header holds one signature: during a grace period the old secret signs (the last live
    # one), so a receiver switches when the grace period ends, as with the other formats.
    return {"x-chatzuri-signature": hmac_hex("sha1", s.secrets[-1], s.body)}


# --- leads (the Leads webhook) ----------------------------------------------------------------
LEADS_SUCCESS_BODIES = ({"status": "success"}, {"status": "Success: test request received"})
LEADS_TYPES = {LEAD_SUBMIT.name: "Lead", APPOINTMENT_CREATED.name: "Appointment", WEBHOOK_TEST.name: "Lead"}


def leads_body(e: Envelope) -> dict:
    """The document's flat record: strings are "" when unknown; SessionID is an integer (the
    document types it `int`): the conversation's number, 0 for a record without one."""
    data = e.data
    session_id = data.get("session_id")

    def text(name: str) -> str:
        return text_or_none(data.get(name)) or ""

    return {
        "SerialNumber": e.site_id,
        "Type": LEADS_TYPES.get(e.event_type, "Lead"),
        "FirstName": text("first_name"),
        "LastName": text("last_name"),
        "Email": text("email"),
        "PhoneNumber": text("phone"),
        "CreateTime": e.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "Content": text("content") or text("message"),
        "SessionID": session_id if type(session_id) is int else 0,
        "URI": text("uri"),
    }


def leads_sign(s: Signing) -> dict[str, str]:
    # The Leads webhook document's receiver keeps the last v1: `v1=<new>,v1=<old>` during a grace period.
    return {"X-Webhook-Signature": timestamped_signature(s)}


def leads_success(status: int, body: bytes) -> bool:
    """2xx and a body whose JSON value is exactly one of the two documented ones (case matters)."""
    if not is_2xx(status, body):
        return False
    try:
        return json.loads(body) in LEADS_SUCCESS_BODIES
    except (ValueError, RecursionError):
        return False


# --- standard (Standard Webhooks) -------------------------------------------------------------
def standard_body(e: Envelope) -> dict:
    return {"type": e.event_type, "timestamp": iso_utc(e.created_at), "data": e.data_fragment}


def standard_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def standard_sign(s: Signing) -> dict[str, str]:
    """`webhook-signature: v1,<base64> v1,<base64>`: space-separated, newest secret first."""
    signed = f"{s.delivery_id}.{s.timestamp}.".encode() + s.body
    signatures = ["v1," + base64.b64encode(hmac.digest(standard_key(k), signed, "sha256")).decode() for k in s.secrets]
    return {
        "webhook-id": s.delivery_id,
        "webhook-timestamp": str(s.timestamp),
        "webhook-signature": " ".join(signatures),
    }


FORMATS = (
    DeliveryFormat(WebhookFormat.AGENTBOT, agentbot_body, agentbot_sign, is_2xx, DEFAULT_SCHEDULE),
    DeliveryFormat(WebhookFormat.CHATZURI, chatzuri_body, chatzuri_sign, is_2xx, DEFAULT_SCHEDULE),
    DeliveryFormat(
        WebhookFormat.LEADS,
        leads_body,
        leads_sign,
        leads_success,
        LEADS_SCHEDULE,
        carries=lambda t: t in LEADS_TYPES,
    ),
    DeliveryFormat(WebhookFormat.STANDARD, standard_body, standard_sign, is_2xx, DEFAULT_SCHEDULE),
)
