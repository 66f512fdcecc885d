"""Chat destinations: Slack, Discord and Microsoft Teams incoming webhooks.

Every event becomes one `ChatMessage` (deliveries/formats/chat_message.py: a one-line summary, the fields
that matter, the long text, a link back to the conversation); each platform renders it here in
its own message shape, escaped its own way and cut to its documented limits
(docs/destinations.md). The webhook's URL is the credential: nothing is signed.

`FORMATS` puts each platform's builder and success rule together as a `DeliveryFormat`;
deliveries/formats/__init__.py registers them by name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from core import jsjson
from deliveries.formats.chat_message import ChatMessage, chat_message
from deliveries.formats.types import DEFAULT_SCHEDULE, DeliveryFormat, Envelope, Signing, answered_gone
from subscriptions.models import WebhookFormat

CHAT_FORMATS = (WebhookFormat.SLACK, WebhookFormat.DISCORD, WebhookFormat.TEAMS)
ELLIPSIS = "…"
FIELD_VALUE_CHARS = 1000  # a field's value, on every platform (Discord allows 1024)


# --- lengths and cuts, as the platforms count -----------------------------------------------------
def units(text: str) -> int:
    """Length as the platforms count it (JavaScript's UTF-16 units): an emoji can count 2."""
    return len(text.encode("utf-16-le")) // 2


def fit(text: str, limit: int, escape: Callable[[str], str] = str) -> str:
    """`text` escaped, and if that is longer than `limit`, the longest prefix that fits with an
    ellipsis. The prefix is cut before escaping, so no escape sequence is ever split.

    Linear in `limit`, whatever the text's length: an escape never makes text shorter, so a text
    of more than `limit` characters cannot fit, and only prefixes of at most `limit` characters are
    ever escaped (a megabyte from an integrator costs what its first few thousand characters do)."""
    if limit < 1:
        return ""
    if len(text) <= limit:
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


# --- Slack: Block Kit -------------------------------------------------------------------------
SLACK_TEXT_CHARS = 40_000  # the message's top-level text (the notification's fallback)
SLACK_HEADER_CHARS = 150
SLACK_SECTION_CHARS = 3000
SLACK_FIELD_CHARS = 2000
SLACK_FIELD_NAME_CHARS = 200  # a field's name, shown bold above its value
SLACK_FIELDS = 10  # per section
SLACK_BLOCKS = 50


def slack_escape(value: str) -> str:
    """Slack's mrkdwn control characters: `&`, `<` and `>` (also what makes links and mentions)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_mrkdwn(value: str) -> dict:
    # verbatim: no automatic links, channel names or mentions from what a visitor wrote
    return {"type": "mrkdwn", "text": value, "verbatim": True}


def slack_field(name: str, value: str) -> dict:
    """`*name*` over its value, both escaped and cut so the field stays within its limit."""
    shown = fit(name, SLACK_FIELD_NAME_CHARS, slack_escape)
    return slack_mrkdwn(f"*{shown}*\n" + fit(value, SLACK_FIELD_CHARS - units(shown) - 3, slack_escape))


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
                "fields": [slack_field(name, value) for name, value in m.fields[:SLACK_FIELDS]],
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


# Slack's answers when the webhook or its channel is gone on Slack's side: no retry brings it back.
SLACK_GONE = {
    b"no_service": "the incoming webhook was removed or disabled in Slack",
    b"channel_not_found": "the webhook's channel was deleted in Slack",
    b"channel_is_archived": "the webhook's channel is archived in Slack",
}


def slack_gone(status: int, body: bytes) -> str:
    """Why Slack will never take this webhook's messages again (404 or 410 with its error), or ""."""
    meaning = SLACK_GONE.get(body.strip()) if status in (404, 410) else None
    return f"Slack answered {status} {body.strip().decode()}: {meaning}" if meaning else ""


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
DISCORD_COLOURS = {
    "conversation": 0x5865F2,
    "message": 0x5865F2,
    "ticket": 0xF0B232,
    "lead": 0x23A55A,
    "appointment": 0x23A55A,
    "webhook": 0xDA373C,
}
DISCORD_DEFAULT_COLOUR = 0x99AAB5

# Markdown that Discord reads anywhere, and at the start of a line (quotes, headings, lists).
_DISCORD_INLINE = re.compile(r"([\\*_~`|\[\]<>])")
# The indent is whitespace other than a line break, so a match never runs on into the next line:
# the pattern is tried once per line and scans only that line (linear; `\s*` here once made a text
# of n line breaks cost n²/2 steps with the GIL held).
_DISCORD_LINE_START = re.compile(r"^([^\S\n]*)(?:([>#+-])|(\d+)\.)", re.MULTILINE)
# @everyone, @here, and role/user/channel mentions: a zero-width space breaks every one of them.
_DISCORD_MENTION = re.compile(r"@(?=everyone|here|[!&]?\d)", re.IGNORECASE)


def discord_escape(value: str) -> str:
    """Shown as written: markdown escaped with backslashes (Discord drops a backslash before any
    punctuation), and no mention can form. allowed_mentions says the same to Discord's server."""
    value = _DISCORD_MENTION.sub("@\u200b", value)
    value = _DISCORD_INLINE.sub(r"\\\1", value)
    return _DISCORD_LINE_START.sub(_discord_line_start, value)


def _discord_line_start(m: re.Match) -> str:
    """`# `, `> `, `- `, `+ ` become `\\# `…; a numbered line `1. ` becomes `1\\. `: Discord keeps a
    backslash before a digit (it would show `\\1.`) and drops it before the dot."""
    indent, mark, number = m.groups()
    return f"{indent}\\{mark}" if mark else f"{indent}{number}\\."


def discord_embed(m: ChatMessage) -> dict:
    title = fit(m.summary, DISCORD_TITLE_CHARS, discord_escape)
    footer = fit(m.footer, DISCORD_FOOTER_CHARS, discord_escape)
    names = [fit(name, DISCORD_FIELD_NAME_CHARS, discord_escape) for name, _ in m.fields[:DISCORD_FIELDS]]
    values = [value for _, value in m.fields[:DISCORD_FIELDS]]
    # The embed's total is shared: values and the description give way, the longest first.
    limits = [DISCORD_FIELD_VALUE_CHARS] * len(values) + ([DISCORD_DESCRIPTION_CHARS] if m.text else [])
    raw = values + ([m.text] if m.text else [])
    budget = DISCORD_EMBED_CHARS - units(title) - units(footer) - sum(units(n) for n in names)
    fitted: dict[tuple[int, int], str] = {}  # a value cut to a limit is cut once, however often asked

    def fitted_value(index: int, limit: int) -> str:
        if (index, limit) not in fitted:
            fitted[index, limit] = fit(raw[index], limit, discord_escape)
        return fitted[index, limit]

    while True:
        shown = [fitted_value(i, limit) for i, limit in enumerate(limits)]
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
        embed["fields"] = [
            {"name": n, "value": v, "inline": units(v) <= 40} for n, v in zip(names, shown[: len(names)], strict=True)
        ]
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


DISCORD_UNKNOWN_WEBHOOK = 10015


def discord_gone(status: int, body: bytes) -> str:
    """Why Discord will never take this webhook's messages again, or "": a 404 "Unknown Webhook"
    (code 10015) when it was deleted, a 401 when its token no longer holds."""
    if status == 401:
        return "Discord answered 401: the webhook's token is no longer valid (the webhook was deleted or reset in Discord)"
    if status != 404:
        return ""
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    if isinstance(answer, dict) and answer.get("code") == DISCORD_UNKNOWN_WEBHOOK:
        return "Discord answered 404 Unknown Webhook (10015): the webhook was deleted in Discord"
    return ""


# --- Microsoft Teams: an Adaptive Card, as Workflows webhooks take it ---------------------------------
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
ADAPTIVE_CARD_VERSION = "1.4"
# Teams documents 28 KB per message, and answers 413 to some smaller ones: the body stays well under.
TEAMS_BODY_BYTES = 20_000
TEAMS_TEXT_CHARS = 10_000
TEAMS_SUMMARY_CHARS = 500
TEAMS_FIELD_NAME_CHARS = 200
TEAMS_FIELDS = 25  # as Discord's embed: an event with thousands of top-level values shows the first


def text_run(value: str, **style) -> dict:
    # A TextRun is never read as markdown, and Teams mentions need entities the card does not
    # carry: what a visitor wrote is shown as written, with nothing to escape.
    return {"type": "TextRun", "text": value, **style}


def teams_card(m: ChatMessage, *, text_chars: int, field_chars: int) -> dict:
    body: list[dict] = [
        {"type": "RichTextBlock", "inlines": [text_run(fit(m.summary, TEAMS_SUMMARY_CHARS), weight="Bolder", size="Medium")]},
    ]
    for name, value in m.fields[:TEAMS_FIELDS]:
        inlines = [text_run(f"{fit(name, TEAMS_FIELD_NAME_CHARS)}: ", weight="Bolder"), text_run(fit(value, field_chars))]
        body.append({"type": "RichTextBlock", "spacing": "None", "inlines": inlines})
    if m.text:
        body.append({"type": "RichTextBlock", "separator": True, "inlines": [text_run(fit(m.text, text_chars))]})
    body.append({"type": "RichTextBlock", "inlines": [text_run(fit(m.footer, TEAMS_SUMMARY_CHARS), isSubtle=True, size="Small")]})
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
            field_chars = max(field_chars - over // max(len(m.fields[:TEAMS_FIELDS]), 1) - 1, 1)


def teams_success(status: int, body: bytes) -> bool:
    """Workflows answers 202 Accepted; the older connectors' webhooks 200."""
    return status in (200, 202)


def unsigned(s: Signing) -> dict[str, str]:
    """No signature: the webhook's URL is the credential."""
    return {}


FORMATS = (
    DeliveryFormat(
        WebhookFormat.SLACK,
        slack_body,
        unsigned,
        slack_success,
        DEFAULT_SCHEDULE,
        gone=lambda status, body: slack_gone(status, body) or answered_gone(status),
    ),
    DeliveryFormat(
        WebhookFormat.DISCORD,
        discord_body,
        unsigned,
        discord_success,
        DEFAULT_SCHEDULE,
        gone=lambda status, body: discord_gone(status, body) or answered_gone(status),
    ),
    DeliveryFormat(WebhookFormat.TEAMS, teams_body, unsigned, teams_success, DEFAULT_SCHEDULE),
)
