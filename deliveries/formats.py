"""Delivery formats: how one event looks on the wire for one kind of receiver.

The formats differ only in data and small functions (body builder, signer, success rule, retry
schedule), so each is a `DeliveryFormat` value and adding one touches this file alone.
"""

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from django.conf import settings

from subscriptions.event_types import (
    APPOINTMENT_CREATED,
    LEAD_SUBMIT,
    MESSAGE_CREATED,
    WEBHOOK_TEST,
)
from subscriptions.models import SECRET_PREFIX, WebhookFormat

USER_AGENT = "Agentbot-Webhooks/1.0"

MINUTE = 60.0
HOUR = 3600.0
DEFAULT_SCHEDULE = (0.0, 1 * MINUTE, 5 * MINUTE, 30 * MINUTE, 3 * HOUR)
LEADS_SCHEDULE = (0.0, 1 * MINUTE, 3 * MINUTE)


@dataclass(frozen=True)
class Envelope:
    """What a format needs to know about the event it renders."""

    event_id: str
    event_type: str
    site_id: str
    created_at: datetime
    data: dict


@dataclass(frozen=True)
class Signing:
    """What a signer needs for one attempt."""

    delivery_id: str
    event_type: str
    body: bytes
    secrets: list[str]  # current first, then the old one during a rotation's grace period
    timestamp: int


@dataclass(frozen=True)
class DeliveryFormat:
    name: str
    build_body: Callable[[Envelope], dict]
    sign: Callable[[Signing], dict[str, str]]
    is_success: Callable[[int, bytes], bool]
    schedule: tuple[float, ...]
    carries: Callable[[str], bool] = lambda event_type: True

    def retry_schedule(self) -> tuple[float, ...]:
        override = settings.AGENTBOT_RETRY_SCHEDULE
        return tuple(override) if override else self.schedule

    def headers(self, signing: Signing) -> dict[str, str]:
        return {"Content-Type": "application/json", "User-Agent": USER_AGENT, **self.sign(signing)}


def iso_utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def hmac_hex(algorithm: str, key: str, message: bytes) -> str:
    return hmac.new(key.encode("utf-8"), message, algorithm).hexdigest()


def timestamped_signature(s: Signing) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, one v1 per live secret."""
    signed = f"{s.timestamp}.".encode() + s.body
    return ",".join([f"t={s.timestamp}"] + [f"v1={hmac_hex('sha256', k, signed)}" for k in s.secrets])


def is_2xx(status: int, body: bytes) -> bool:
    return 200 <= status < 300


# --- agentbot (seed 002) ----------------------------------------------------------------------
def agentbot_body(e: Envelope) -> dict:
    return {"event": e.event_type, "timestamp": iso_utc(e.created_at), "site_id": e.site_id, "data": e.data}


def agentbot_sign(s: Signing) -> dict[str, str]:
    return {
        "X-Agentbot-Event": s.event_type,
        "X-Agentbot-Signature": timestamped_signature(s),
        "X-Agentbot-Delivery-Id": s.delivery_id,
    }


# --- chatzuri (seed 001) ----------------------------------------------------------------------
CHATZURI_CHANNEL_FIELDS = {
    # channel -> the payload fields the seed shows for it, read from the message's `source`
    "whatsapp": ("from",),
    "telegram": ("chatId", "username"),
    "facebook": ("senderId", "pageId"),
    "instagram": ("senderId",),
    "email": ("from", "subject"),
    "web": ("sessionId",),
}


def chatzuri_body(e: Envelope) -> dict:
    data = e.data
    if e.event_type == MESSAGE_CREATED.name and data.get("sender_type") == "visitor":
        channel = data.get("channel") or "web"
        source = data.get("source") or {}
        payload = {f: source.get(f) for f in CHATZURI_CHANNEL_FIELDS.get(channel, ())}
        payload["message"] = data.get("body")
        payload["conversationId"] = data.get("conversation_id")
        if channel == "web":
            payload["pageUrl"] = data.get("page_url")
        return {"eventType": "message.received", "channel": channel, "agentId": e.site_id, "payload": payload}
    if e.event_type == LEAD_SUBMIT.name:
        name = " ".join(p for p in (data.get("first_name"), data.get("last_name")) if p)
        payload = {
            "conversationId": data.get("conversation_id"),
            "customerEmail": data.get("email"),
            "customerName": name,
            "customerPhone": data.get("phone"),
        }
        return {"eventType": e.event_type, "agentId": e.site_id, "payload": payload}
    return {"eventType": e.event_type, "agentId": e.site_id, "payload": data}


def chatzuri_sign(s: Signing) -> dict[str, str]:
    # The header holds one signature, so during a rotation the new secret signs.
    return {"x-chatzuri-signature": hmac_hex("sha1", s.secrets[0], s.body)}


# --- leads (seed 004) -------------------------------------------------------------------------
LEADS_SUCCESS_BODIES = ({"status": "success"}, {"status": "Success: test request received"})
LEADS_TYPES = {LEAD_SUBMIT.name: "Lead", APPOINTMENT_CREATED.name: "Appointment", WEBHOOK_TEST.name: "Lead"}


def leads_body(e: Envelope) -> dict:
    data = e.data
    return {
        "SerialNumber": e.site_id,
        "Type": LEADS_TYPES.get(e.event_type, "Lead"),
        "FirstName": data.get("first_name") or "",
        "LastName": data.get("last_name") or "",
        "Email": data.get("email") or "",
        "PhoneNumber": data.get("phone") or "",
        "CreateTime": e.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "Content": data.get("content") or data.get("message") or "",
        "SessionID": data.get("session_id") or data.get("conversation_id") or "",
        "URI": data.get("uri") or "",
    }


def leads_sign(s: Signing) -> dict[str, str]:
    return {"X-Webhook-Signature": timestamped_signature(s)}


def leads_success(status: int, body: bytes) -> bool:
    if not is_2xx(status, body):
        return False
    try:
        return json.loads(body) in LEADS_SUCCESS_BODIES
    except ValueError:
        return False


# --- standard (Standard Webhooks) -------------------------------------------------------------
def standard_body(e: Envelope) -> dict:
    return {"type": e.event_type, "timestamp": iso_utc(e.created_at), "data": e.data}


def standard_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def standard_sign(s: Signing) -> dict[str, str]:
    signed = f"{s.delivery_id}.{s.timestamp}.".encode() + s.body
    signatures = [
        "v1," + base64.b64encode(hmac.new(standard_key(k), signed, hashlib.sha256).digest()).decode()
        for k in s.secrets
    ]
    return {
        "webhook-id": s.delivery_id,
        "webhook-timestamp": str(s.timestamp),
        "webhook-signature": " ".join(signatures),
    }


FORMATS: dict[str, DeliveryFormat] = {
    f.name: f
    for f in (
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
}


def get_format(name: str) -> DeliveryFormat:
    return FORMATS[name]
