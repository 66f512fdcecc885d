"""The message a chat channel gets for one event, whatever the platform: a one-line summary, the
fields that matter, the long text (what was written, a reason, remarks) and a link back to the
conversation when AGENTBOT_PUBLIC_URL is set. deliveries/formats/chat.py renders it per platform.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from deliveries.formats.types import Envelope
from subscriptions.event_types import (
    APPOINTMENT_CREATED,
    CONVERSATION_CLOSED,
    CONVERSATION_CREATED,
    CONVERSATION_MERGED,
    CONVERSATION_NEEDS_HUMAN,
    DELIVERY_EXHAUSTED,
    LEAD_SUBMIT,
    MESSAGE_CREATED,
    TICKET_CREATED,
    TICKET_UPDATED,
    WEBHOOK_CIRCUIT_OPENED,
    WEBHOOK_DISABLED,
    WEBHOOK_FAILING,
    WEBHOOK_RECOVERED,
    WEBHOOK_TEST,
)

CONVERSATION_ID = re.compile(r"conv_[A-Za-z0-9_-]+")
WEBHOOK_ID = re.compile(r"wh_[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class ChatMessage:
    event_type: str
    summary: str  # one line, plain text: the header, the notification, the fallback
    fields: tuple[tuple[str, str], ...]  # (name, value), plain text
    text: str | None  # the long text: what was written, a reason, remarks; plain text
    link: Link | None
    footer: str
    timestamp: str  # ISO 8601, UTC


def one_line(text: str) -> str:
    return " ".join(text.split())


def text(value) -> str | None:
    """A field of event data as text: strings and numbers; anything else is unknown. Event data
    may come from integrators (POST /events), so it is read defensively."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def fields(*pairs: tuple[str, object]) -> tuple[tuple[str, str], ...]:
    """The pairs whose value is known, as text."""
    return tuple((name, shown) for name, value in pairs if (shown := text(value)))


def person(name=None, email=None, phone=None) -> str | None:
    """`Ada Lovelace · ada@example.com · +1234`, or None when nothing is known."""
    return " · ".join(part for part in (text(name), text(email), text(phone)) if part) or None


def visitor_of(data: dict) -> str | None:
    visitor = data.get("visitor")
    if isinstance(visitor, dict):
        return person(visitor.get("name"), visitor.get("email"), visitor.get("phone"))
    return person(data.get("visitor_name"), data.get("visitor_email"))


def who(data: dict) -> str:
    """The visitor's name (or address) for a summary."""
    visitor = data.get("visitor") if isinstance(data.get("visitor"), dict) else {}
    for value in (visitor.get("name"), data.get("visitor_name"), visitor.get("email"), data.get("visitor_email")):
        if text(value):
            return text(value)
    return "a visitor"


def on_channel(data: dict) -> str:
    return f" on {text(data['channel'])}" if text(data.get("channel")) else ""


def conversation_fields(data: dict) -> tuple[tuple[str, str], ...]:
    return fields(("Conversation", data.get("conversation_id")), ("Channel", data.get("channel")), ("Visitor", visitor_of(data)))


def full_name(data: dict) -> str:
    return " ".join(part for part in (text(data.get("first_name")), text(data.get("last_name"))) if part)


def contact_name(data: dict) -> str:
    return full_name(data) or text(data.get("email")) or text(data.get("phone")) or "no name given"


# Per event type: (summary, fields, long text) from the event's data.
Described = tuple[str, tuple[tuple[str, str], ...], str | None]


def describe_conversation_created(data: dict) -> Described:
    return (
        f"New conversation with {who(data)}{on_channel(data)}",
        conversation_fields(data) + fields(("Page", data.get("page_url"))),
        None,
    )


def describe_conversation_closed(data: dict) -> Described:
    return f"Conversation with {who(data)} closed", conversation_fields(data), None


def describe_conversation_merged(data: dict) -> Described:
    return (
        f"Conversation with {who(data)} merged{on_channel(data)}",
        conversation_fields(data)
        + fields(("Merged from", data.get("merged_conversation_id")), ("Messages moved", data.get("moved_message_count"))),
        None,
    )


def describe_needs_human(data: dict) -> Described:
    return f"{who(data)} needs a human{on_channel(data)}", conversation_fields(data), text(data.get("reason"))


SENDERS = {"visitor": "Visitor", "agent": "Agent", "ai": "AI"}


def describe_message_created(data: dict) -> Described:
    sender = text(data.get("sender_type"))
    if sender == "visitor":
        summary = f"{who(data)} wrote{on_channel(data)}"
    else:
        summary = f"{SENDERS.get(sender, 'Someone')} replied to {who(data)}{on_channel(data)}"
    sent_by = ("From", SENDERS.get(sender))
    return summary, conversation_fields(data) + fields(sent_by), text(data.get("body"))


def ticket_fields(data: dict) -> tuple[tuple[str, str], ...]:
    return fields(
        ("Ticket", data.get("ticket_id")),
        ("Status", data.get("status")),
        ("Priority", data.get("priority")),
        ("Assignee", text(data.get("assignee")) or "nobody"),
        ("Conversation", data.get("conversation_id")),
    )


def describe_ticket_created(data: dict) -> Described:
    return f"Ticket opened: {text(data.get('subject')) or 'no subject'}", ticket_fields(data), None


def describe_ticket_updated(data: dict) -> Described:
    changes = data.get("changes") if isinstance(data.get("changes"), dict) else {}
    lines = []
    for name, change in changes.items():
        change = change if isinstance(change, dict) else {}
        lines.append(f"{name}: {text(change.get('from')) or 'nothing'} → {text(change.get('to')) or 'nothing'}")
    summary = f"Ticket updated: {text(data.get('subject')) or 'no subject'}"
    return summary, ticket_fields(data) + fields(("Changed", "\n".join(lines))), None


def contact_fields(data: dict, record: str) -> tuple[tuple[str, str], ...]:
    return fields(
        (record.capitalize(), data.get(f"{record}_id")),
        ("Name", full_name(data)),
        ("Email", data.get("email")),
        ("Phone", data.get("phone")),
        ("Conversation", data.get("conversation_id")),
        ("Page", data.get("uri")),
    )


def describe_lead(data: dict) -> Described:
    return f"New lead: {contact_name(data)}", contact_fields(data, "lead"), text(data.get("content"))


def describe_appointment(data: dict) -> Described:
    return f"New appointment: {contact_name(data)}", contact_fields(data, "appointment"), text(data.get("content"))


def describe_test(data: dict) -> Described:
    return "Test event from Agentbot", fields(("Webhook", data.get("webhook_id"))), text(data.get("message"))


def describe_disabled(data: dict) -> Described:
    return (
        f"Webhook disabled: {text(data.get('url')) or text(data.get('webhook_id')) or 'unknown'}",
        fields(("Webhook", data.get("webhook_id")), ("URL", data.get("url")), ("Disabled at", data.get("disabled_at"))),
        text(data.get("reason")),
    )


def describe_circuit_opened(data: dict) -> Described:
    return (
        f"Webhook failing, deliveries held: {text(data.get('url')) or text(data.get('webhook_id')) or 'unknown'}",
        fields(
            ("Webhook", data.get("webhook_id")),
            ("URL", data.get("url")),
            ("Failures in a row", data.get("consecutive_failures")),
            ("Next probe", data.get("next_probe_at")),
        ),
        None,
    )


def _webhook_named(data: dict) -> str:
    return text(data.get("url")) or text(data.get("webhook_id")) or "unknown"


def describe_failing(data: dict) -> Described:
    return (
        f"Webhook failing ({text(data.get('percent')) or '?'}% of the way to being disabled): {_webhook_named(data)}",
        fields(
            ("Webhook", data.get("webhook_id")),
            ("URL", data.get("url")),
            ("Failures in a row", data.get("consecutive_failures")),
            ("Failing since", data.get("failing_since")),
            ("Disabled at", data.get("disables_at")),
        ),
        "Every delivery to this webhook has failed since the time above. Fix the receiver before it is disabled.",
    )


def describe_recovered(data: dict) -> Described:
    return (
        f"Webhook recovered: {_webhook_named(data)}",
        fields(("Webhook", data.get("webhook_id")), ("URL", data.get("url")), ("Recovered at", data.get("recovered_at"))),
        None,
    )


def describe_exhausted(data: dict) -> Described:
    return (
        f"Delivery failed for good: {text(data.get('event_type')) or 'an event'} to {_webhook_named(data)}",
        fields(
            ("Delivery", data.get("delivery_id")),
            ("Event", data.get("event_id")),
            ("Webhook", data.get("webhook_id")),
            ("Attempts", data.get("attempts")),
            ("Last status", data.get("last_status_code")),
        ),
        text(data.get("last_error")),
    )


DESCRIBE: dict[str, Callable[[dict], Described]] = {
    CONVERSATION_CREATED.name: describe_conversation_created,
    CONVERSATION_CLOSED.name: describe_conversation_closed,
    CONVERSATION_NEEDS_HUMAN.name: describe_needs_human,
    CONVERSATION_MERGED.name: describe_conversation_merged,
    MESSAGE_CREATED.name: describe_message_created,
    TICKET_CREATED.name: describe_ticket_created,
    TICKET_UPDATED.name: describe_ticket_updated,
    LEAD_SUBMIT.name: describe_lead,
    APPOINTMENT_CREATED.name: describe_appointment,
    WEBHOOK_TEST.name: describe_test,
    WEBHOOK_DISABLED.name: describe_disabled,
    WEBHOOK_CIRCUIT_OPENED.name: describe_circuit_opened,
    WEBHOOK_FAILING.name: describe_failing,
    WEBHOOK_RECOVERED.name: describe_recovered,
    DELIVERY_EXHAUSTED.name: describe_exhausted,
}


def describe_other(event_type: str, data: dict) -> Described:
    """An event the catalogue does not describe: its name and its top-level values."""
    return event_type, fields(*data.items()), None


def link_of(data: dict) -> Link | None:
    """Back to the conversation (or the webhook) in the admin, when the service's public URL is known."""
    base = settings.AGENTBOT_PUBLIC_URL
    if not base:
        return None
    targets = (
        ("conversation_id", CONVERSATION_ID, "admin:domain_conversation_change", "Open the conversation"),
        ("webhook_id", WEBHOOK_ID, "admin:subscriptions_webhook_change", "Open the webhook"),
    )
    for key, pattern, view, label in targets:
        value = data.get(key)
        if isinstance(value, str) and pattern.fullmatch(value):
            try:
                return Link(label, base + reverse(view, args=[value]))
            except NoReverseMatch:
                return None
    return None


def chat_message(e: Envelope) -> ChatMessage:
    data = e.data
    describe = DESCRIBE.get(e.event_type)
    summary, pairs, long_text = describe(data) if describe else describe_other(e.event_type, data)
    at = e.created_at.astimezone(UTC)
    return ChatMessage(
        event_type=e.event_type,
        summary=one_line(summary[:1].upper() + summary[1:]),
        fields=pairs,
        text=long_text,
        link=link_of(data),
        footer=f"{e.event_type} · {e.site_id} · {at:%Y-%m-%d %H:%M} UTC",
        timestamp=at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def chat_summary(e: Envelope) -> str:
    return chat_message(e).summary
