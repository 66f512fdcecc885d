"""Chat destinations: Slack, Discord and Microsoft Teams incoming webhooks.

Every event becomes one `ChatMessage` (a one-line summary, the fields that matter, the long text
such as what the visitor wrote, and a link back to the conversation when AGENTBOT_PUBLIC_URL is
set); each platform renders it in its own message shape, escaped its own way and cut to its
documented limits (docs/destinations.md). The webhook's URL is the credential: nothing is signed.

deliveries/formats.py registers the three formats from the builders and success rules here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from deliveries import jsjson
from subscriptions.event_types import (
    APPOINTMENT_CREATED,
    CONVERSATION_CLOSED,
    CONVERSATION_CREATED,
    CONVERSATION_NEEDS_HUMAN,
    LEAD_SUBMIT,
    MESSAGE_CREATED,
    TICKET_CREATED,
    TICKET_UPDATED,
    WEBHOOK_CIRCUIT_OPENED,
    WEBHOOK_DISABLED,
    WEBHOOK_TEST,
)
from subscriptions.models import WebhookFormat

if TYPE_CHECKING:  # formats.py imports this module to register the formats
    from deliveries.formats import Envelope

CHAT_FORMATS = (WebhookFormat.SLACK, WebhookFormat.DISCORD, WebhookFormat.TEAMS)
ELLIPSIS = "…"
FIELD_VALUE_CHARS = 1000  # a field's value, on every platform (Discord allows 1024)
CONVERSATION_ID = re.compile(r"conv_[A-Za-z0-9_-]+")
WEBHOOK_ID = re.compile(r"wh_[A-Za-z0-9_-]+")


# --- the message, whatever the platform ------------------------------------------------------
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


def units(text: str) -> int:
    """Length as the platforms count it (JavaScript's UTF-16 units): an emoji can count 2."""
    return len(text.encode("utf-16-le")) // 2


def fit(text: str, limit: int, escape: Callable[[str], str] = str) -> str:
    """`text` escaped, and if that is longer than `limit`, the longest prefix that fits with an
    ellipsis. The prefix is cut before escaping, so no escape sequence is ever split."""
    rendered = escape(text)
    if units(rendered) <= limit:
        return rendered

    def cut(keep: int) -> str:
        return escape(text[:keep].rstrip()) + ELLIPSIS

    low, high = 0, min(len(text), limit)  # a character is at least one unit once escaped
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if units(cut(middle)) <= limit else (low, middle - 1)
    return cut(low)


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
    return f"New conversation with {who(data)}{on_channel(data)}", conversation_fields(data) + fields(("Page", data.get("page_url"))), None


def describe_conversation_closed(data: dict) -> Described:
    return f"Conversation with {who(data)} closed", conversation_fields(data), None


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


DESCRIBE: dict[str, Callable[[dict], Described]] = {
    CONVERSATION_CREATED.name: describe_conversation_created,
    CONVERSATION_CLOSED.name: describe_conversation_closed,
    CONVERSATION_NEEDS_HUMAN.name: describe_needs_human,
    MESSAGE_CREATED.name: describe_message_created,
    TICKET_CREATED.name: describe_ticket_created,
    TICKET_UPDATED.name: describe_ticket_updated,
    LEAD_SUBMIT.name: describe_lead,
    APPOINTMENT_CREATED.name: describe_appointment,
    WEBHOOK_TEST.name: describe_test,
    WEBHOOK_DISABLED.name: describe_disabled,
    WEBHOOK_CIRCUIT_OPENED.name: describe_circuit_opened,
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


# --- Slack: Block Kit -------------------------------------------------------------------------
SLACK_TEXT_CHARS = 40_000  # the message's top-level text (the notification's fallback)
SLACK_HEADER_CHARS = 150
SLACK_SECTION_CHARS = 3000
SLACK_FIELD_CHARS = 2000
SLACK_FIELDS = 10  # per section
SLACK_BLOCKS = 50


def slack_escape(value: str) -> str:
    """Slack's mrkdwn control characters: `&`, `<` and `>` (also what makes links and mentions)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_mrkdwn(value: str) -> dict:
    # verbatim: no automatic links, channel names or mentions from what a visitor wrote
    return {"type": "mrkdwn", "text": value, "verbatim": True}


def slack_body(e: Envelope) -> dict:
    m = chat_message(e)
    blocks: list[dict] = [
        # plain_text is shown as it is: no entities, no formatting, no mentions
        {"type": "header", "text": {"type": "plain_text", "text": fit(m.summary, SLACK_HEADER_CHARS), "emoji": False}},
    ]
    if m.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    slack_mrkdwn(f"*{slack_escape(name)}*\n" + fit(value, SLACK_FIELD_CHARS - units(name) - 3, slack_escape))
                    for name, value in m.fields[:SLACK_FIELDS]
                ],
            }
        )
    if m.text:
        blocks.append({"type": "section", "text": slack_mrkdwn(fit(m.text, SLACK_SECTION_CHARS, slack_escape))})
    context = [slack_mrkdwn(slack_escape(m.footer))]
    if m.link:
        context.append({"type": "mrkdwn", "text": f"<{slack_escape(m.link.url)}|{slack_escape(m.link.label)}>"})
    blocks.append({"type": "context", "elements": context})
    return {"text": fit(m.summary, SLACK_TEXT_CHARS, slack_escape), "blocks": blocks[:SLACK_BLOCKS]}


def slack_success(status: int, body: bytes) -> bool:
    """Slack answers 200 with the body `ok`; anything else (`invalid_payload`, …) is a refusal."""
    return status == 200 and body == b"ok"


# --- Discord: content and an embed ----------------------------------------------------------------
DISCORD_CONTENT_CHARS = 2000
DISCORD_TITLE_CHARS = 256
DISCORD_DESCRIPTION_CHARS = 4096
DISCORD_FIELD_NAME_CHARS = 256
DISCORD_FIELD_VALUE_CHARS = 1024
DISCORD_FIELDS = 25
DISCORD_FOOTER_CHARS = 2048
DISCORD_EMBED_CHARS = 6000  # title, description, field names and values, footer: all together
# The embed's stripe, by the event type's first word.
DISCORD_COLOURS = {"conversation": 0x5865F2, "message": 0x5865F2, "ticket": 0xF0B232, "lead": 0x23A55A,
                   "appointment": 0x23A55A, "webhook": 0xDA373C}
DISCORD_DEFAULT_COLOUR = 0x99AAB5

# Markdown that Discord reads anywhere, and at the start of a line (quotes, headings, lists).
_DISCORD_INLINE = re.compile(r"([\\*_~`|\[\]<>])")
_DISCORD_LINE_START = re.compile(r"^(\s*)([>#+-]|\d+\.)", re.MULTILINE)
# @everyone, @here, and role/user/channel mentions: a zero-width space breaks every one of them.
_DISCORD_MENTION = re.compile(r"@(?=everyone|here|[!&]?\d)", re.IGNORECASE)


def discord_escape(value: str) -> str:
    """Shown as written: markdown escaped with backslashes (Discord drops a backslash before any
    punctuation), and no mention can form. allowed_mentions says the same to Discord's server."""
    value = _DISCORD_MENTION.sub("@\u200b", value)
    value = _DISCORD_INLINE.sub(r"\\\1", value)
    return _DISCORD_LINE_START.sub(lambda m: f"{m.group(1)}\\{m.group(2)}", value)


def discord_embed(m: ChatMessage) -> dict:
    title = fit(m.summary, DISCORD_TITLE_CHARS, discord_escape)
    footer = fit(m.footer, DISCORD_FOOTER_CHARS, discord_escape)
    names = [fit(name, DISCORD_FIELD_NAME_CHARS, discord_escape) for name, _ in m.fields[:DISCORD_FIELDS]]
    values = [value for _, value in m.fields[:DISCORD_FIELDS]]
    # The embed's total is shared: values and the description give way, the longest first.
    limits = [DISCORD_FIELD_VALUE_CHARS] * len(values) + ([DISCORD_DESCRIPTION_CHARS] if m.text else [])
    raw = values + ([m.text] if m.text else [])
    budget = DISCORD_EMBED_CHARS - units(title) - units(footer) - sum(units(n) for n in names)
    while True:
        shown = [fit(value, limit, discord_escape) for value, limit in zip(raw, limits, strict=True)]
        over = sum(units(s) for s in shown) - budget
        longest = max(range(len(shown)), key=lambda i: units(shown[i]), default=None)
        if over <= 0 or longest is None or units(shown[longest]) <= 1:
            break
        limits[longest] = max(units(shown[longest]) - over, 1)
    colour = DISCORD_COLOURS.get(m.event_type.split(".")[0], DISCORD_DEFAULT_COLOUR)
    embed: dict = {"title": title, "color": colour}
    if m.text:
        embed["description"] = shown[-1]
    if m.link:
        embed["url"] = m.link.url
    if names:
        embed["fields"] = [{"name": n, "value": v, "inline": units(v) <= 40} for n, v in zip(names, shown[: len(names)], strict=True)]
    embed["footer"] = {"text": footer}
    embed["timestamp"] = m.timestamp
    return embed


def discord_body(e: Envelope) -> dict:
    m = chat_message(e)
    return {
        "content": fit(m.summary, DISCORD_CONTENT_CHARS, discord_escape),
        "embeds": [discord_embed(m)],
        "allowed_mentions": {"parse": []},
    }


def discord_success(status: int, body: bytes) -> bool:
    """204 No Content; or, for a URL with `?wait=true`, 200 with the message created (its `id`)."""
    if status == 204:
        return True
    if status != 200:
        return False
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(answer, dict) and "id" in answer


# --- Microsoft Teams: an Adaptive Card, as Workflows webhooks take it ---------------------------------
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
ADAPTIVE_CARD_VERSION = "1.4"
# Teams documents 28 KB per message, and answers 413 to some smaller ones: the body stays well under.
TEAMS_BODY_BYTES = 20_000
TEAMS_TEXT_CHARS = 10_000
TEAMS_SUMMARY_CHARS = 500


def text_run(value: str, **style) -> dict:
    # A TextRun is never read as markdown, and Teams mentions need entities the card does not
    # carry: what a visitor wrote is shown as written, with nothing to escape.
    return {"type": "TextRun", "text": value, **style}


def teams_card(m: ChatMessage, *, text_chars: int, field_chars: int) -> dict:
    body: list[dict] = [
        {"type": "RichTextBlock", "inlines": [text_run(fit(m.summary, TEAMS_SUMMARY_CHARS), weight="Bolder", size="Medium")]},
    ]
    for name, value in m.fields:
        inlines = [text_run(f"{name}: ", weight="Bolder"), text_run(fit(value, field_chars))]
        body.append({"type": "RichTextBlock", "spacing": "None", "inlines": inlines})
    if m.text:
        body.append({"type": "RichTextBlock", "separator": True, "inlines": [text_run(fit(m.text, text_chars))]})
    body.append({"type": "RichTextBlock", "inlines": [text_run(m.footer, isSubtle=True, size="Small")]})
    card: dict = {"$schema": ADAPTIVE_CARD_SCHEMA, "type": "AdaptiveCard", "version": ADAPTIVE_CARD_VERSION, "body": body}
    if m.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": m.link.label, "url": m.link.url}]
    card["msteams"] = {"width": "Full"}
    return {"type": "message", "attachments": [{"contentType": ADAPTIVE_CARD, "content": card}]}


def teams_body(e: Envelope) -> dict:
    """The card, its long text cut (then its fields) until the body fits TEAMS_BODY_BYTES."""
    m = chat_message(e)
    text_chars, field_chars = min(TEAMS_TEXT_CHARS, units(m.text or "")), FIELD_VALUE_CHARS
    while True:
        message = teams_card(m, text_chars=text_chars, field_chars=field_chars)
        over = len(jsjson.dumps(message)) - TEAMS_BODY_BYTES
        if over <= 0 or (text_chars <= 1 and field_chars <= 1):
            return message
        # Every character takes at least one byte: taking `over` off is enough, or nearly.
        if text_chars > 1:
            text_chars = max(text_chars - over, 1)
        else:
            field_chars = max(field_chars - over // max(len(m.fields), 1) - 1, 1)


def teams_success(status: int, body: bytes) -> bool:
    """Workflows answers 202 Accepted; the older connectors' webhooks 200."""
    return status in (200, 202)
