"""What every delivery format builds on: what a format renders (`Envelope`), what a signer signs
(`Signing`), a format itself (`DeliveryFormat`), the default retry schedule and the small helpers
the body builders share.

This module imports none of the format modules: the signed formats (signed.py), the chat formats
(chat.py, chat_message.py) and the connectors' reply formats (inbound/connectors/) build on it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

from django.conf import settings

from core import jsjson

MINUTE = 60.0
HOUR = 3600.0
DEFAULT_SCHEDULE = (0.0, 1 * MINUTE, 5 * MINUTE, 30 * MINUTE, 3 * HOUR)  # immediately, 1 m, 5 m, 30 m, 3 h

USER_AGENT = "Agentbot-Webhooks/1.0"
DELIVERY_ID_HEADER = "X-Agentbot-Delivery-Id"


@dataclass(frozen=True)
class Envelope:
    """What a format needs to know about the event it renders.

    `data_json` is the event's data as stored: JavaScript's serialisation, rendered once at publish.
    A format that sends the data whole embeds it as it is (`data_fragment`); one that picks fields
    out of it reads `data`, parsed as JavaScript would.
    """

    event_id: str
    event_type: str
    site_id: str
    created_at: datetime
    data_json: str

    @classmethod
    def of(cls, event_id: str, event_type: str, site_id: str, created_at: datetime, data: dict) -> "Envelope":
        return cls(event_id, event_type, site_id, created_at, jsjson.dumps(data).decode("utf-8"))

    @cached_property
    def data(self) -> dict:
        value = jsjson.parse(self.data_json)
        return value if isinstance(value, dict) else {}

    @property
    def data_fragment(self) -> jsjson.Fragment:
        return jsjson.Fragment(self.data_json)


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
    # A failed answer that says the receiver is gone for good (a 410; a chat platform's own words
    # for a webhook deleted on its side): the reason, which ends the delivery and disables the
    # webhook (deliveries/engine/endpoint_health.py); "" for a failure worth retrying.
    gone: Callable[[int, bytes], str] = lambda status, body: answered_gone(status)

    def render(self, envelope: Envelope) -> bytes:
        """The request body: the same bytes for every attempt of every delivery of the event."""
        return jsjson.dumps(self.build_body(envelope))

    def retry_schedule(self) -> tuple[float, ...]:
        override = settings.AGENTBOT_RETRY_SCHEDULE
        return tuple(override) if override else self.schedule

    def headers(self, signing: Signing) -> dict[str, str]:
        # Every format carries the delivery id (same on every retry), so any receiver can
        # de-duplicate; the format's own headers come after and may name it again.
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            DELIVERY_ID_HEADER: signing.delivery_id,
            **self.sign(signing),
        }


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def answered_gone(status: int) -> str:
    return "the receiver answered 410 Gone" if status == 410 else ""


def is_2xx(status: int, body: bytes) -> bool:
    return 200 <= status < 300


# Event data comes from the domain or from integrators (POST /events), so a body builder reads
# it defensively: a field of the wrong type renders as "unknown", never as a crashed worker.
def text_or_none(value) -> str | None:
    return value if isinstance(value, str) and value else None


def object_or_empty(value) -> dict:
    return value if isinstance(value, dict) else {}
