"""The slack, discord and teams formats: each catalogue event as the platform's own message, escaped
the platform's way, cut to its documented limits, unsigned, with the platform's success rule."""

import json
import re
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core import jsjson
from deliveries.formats import get_format
from deliveries.formats.chat import (
    DISCORD_EMBED_CHARS,
    SLACK_HEADER_CHARS,
    SLACK_SECTION_CHARS,
    TEAMS_BODY_BYTES,
    discord_success,
    fit,
    slack_escape,
    slack_success,
    teams_success,
    units,
)
from deliveries.formats.types import Envelope, Signing
from subscriptions.event_types import CATALOGUE
from tests.support.json_values import json_values, storable_text

SITE = "site_abc"
CREATED = datetime(2026, 5, 17, 12, 34, 56, tzinfo=UTC)
CHAT = ("slack", "discord", "teams")
PUBLIC = "https://agent.example.com"


def body(format_name: str, event_type: str, data: dict) -> dict:
    rendered = get_format(format_name).render(Envelope.of("evt_1", event_type, SITE, CREATED, data))
    return json.loads(rendered)


def message(text: str, **extra) -> dict:
    return {**CATALOGUE["message.created"].example, "body": text, **extra}


# --- the platforms' shapes and limits, checked on every body below ---------------------------------------
def slack_texts(b: dict) -> list[str]:
    """Every mrkdwn text of a Slack message, the fallback first."""
    texts = [b["text"]]
    for block in b["blocks"]:
        texts += [f["text"] for f in block.get("fields", [])]
        texts += [block["text"]["text"]] if block["type"] == "section" and "text" in block else []
        texts += [e["text"] for e in block.get("elements", [])]
    return texts


def assert_slack_shape(b: dict) -> None:
    assert set(b) == {"text", "blocks"} and b["text"]
    assert 1 <= len(b["blocks"]) <= 50
    header = b["blocks"][0]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert 1 <= units(header["text"]["text"]) <= SLACK_HEADER_CHARS
    for block in b["blocks"][1:]:
        assert block["type"] in ("section", "context")
        if block["type"] == "section":
            assert units(block.get("text", {}).get("text", "")) <= SLACK_SECTION_CHARS
            assert len(block.get("fields", [])) <= 10
            assert all(f["type"] == "mrkdwn" and units(f["text"]) <= 2000 for f in block.get("fields", []))
    assert units(b["text"]) <= 40_000


def discord_embed_total(embed: dict) -> int:
    parts = [embed.get("title", ""), embed.get("description", ""), embed.get("footer", {}).get("text", "")]
    parts += [f["name"] + f["value"] for f in embed.get("fields", [])]
    return sum(units(p) for p in parts)


def assert_discord_shape(b: dict) -> None:
    assert b["allowed_mentions"] == {"parse": []}
    assert 1 <= units(b["content"]) <= 2000
    (embed,) = b["embeds"]
    assert 1 <= units(embed["title"]) <= 256 and units(embed.get("description", "")) <= 4096
    assert len(embed.get("fields", [])) <= 25
    assert all(1 <= units(f["name"]) <= 256 and 1 <= units(f["value"]) <= 1024 for f in embed.get("fields", []))
    assert discord_embed_total(embed) <= DISCORD_EMBED_CHARS
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", embed["timestamp"])


def teams_runs(b: dict) -> list[str]:
    card = b["attachments"][0]["content"]
    return [run["text"] for block in card["body"] for run in block["inlines"]]


def assert_teams_shape(b: dict) -> None:
    assert b["type"] == "message" and set(b) == {"type", "attachments"}
    (attachment,) = b["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4" and card["body"]
    # RichTextBlocks of TextRuns only: nothing of the card is read as markdown
    assert {block["type"] for block in card["body"]} == {"RichTextBlock"}
    assert all(run["type"] == "TextRun" for block in card["body"] for run in block["inlines"])
    assert len(jsjson.dumps(b)) <= TEAMS_BODY_BYTES


SHAPES = {"slack": assert_slack_shape, "discord": assert_discord_shape, "teams": assert_teams_shape}

# What each catalogue example must show: its summary, and the fields that matter.
SHOWN = {
    "conversation.created": ["New conversation with Ada Lovelace on web", "conv_xyz", "ada@example.com"],
    "conversation.closed": ["Conversation with Ada Lovelace closed", "conv_xyz"],
    "conversation.needs_human": ["Ada Lovelace needs a human on web", "Visitor asked for a refund"],
    "conversation.merged": ["Conversation with Ada Lovelace merged on web", "conv_xyz", "conv_abc", "3"],
    "message.created": ["A visitor wrote on web", "Hi, what's your pricing?", "conv_xyz"],
    "ticket.created": ["Ticket opened: Refund request", "tkt_123", "open", "nobody"],
    "ticket.updated": ["Ticket updated: Refund request", "pending", "sam@example.com", "status: open → pending"],
    "lead.submit": ["New lead: David Garcia", "david@example.com", "+1234567890", "Wants a demo"],
    "appointment.created": ["New appointment: David Garcia", "Demo on Tuesday 10:00", "david@example.com"],
    "webhook.test": ["Test event from Agentbot", "This is a test event from Agentbot."],
    "webhook.disabled": ["Webhook disabled: https://crm.example.com/hooks", "the receiver answered 410 Gone"],
    "webhook.circuit_opened": ["Webhook failing, deliveries held", "10"],
    "webhook.failing": ["Webhook failing (50% of the way to being disabled)", "412", "2026-05-20T00:34:56Z"],
    "webhook.recovered": ["Webhook recovered: https://crm.example.com/hooks", "2026-05-17T12:40:00Z"],
    "delivery.exhausted": ["Delivery failed for good: message.created to https://crm.example.com/hooks", "HTTP 503"],
}


def shown_text(format_name: str, b: dict) -> str:
    """What a person reads, with each platform's escapes undone."""
    if format_name == "slack":
        return "\n".join(slack_texts(b) + [b["blocks"][0]["text"]["text"]]).replace("&amp;", "&")
    if format_name == "discord":
        embed = b["embeds"][0]
        parts = [b["content"], embed["title"], embed.get("description", "")]
        parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields", [])]
        return re.sub(r"\\(.)", r"\1", "\n".join(parts)).replace("\u200b", "")
    return "\n".join(teams_runs(b))


def test_every_catalogue_event_has_what_it_shows_listed():
    assert set(SHOWN) == set(CATALOGUE)


@pytest.mark.parametrize("format_name", CHAT)
@pytest.mark.parametrize("event_type", list(CATALOGUE))
def test_every_catalogue_event_renders_in_the_platforms_shape_with_its_summary_and_fields(format_name, event_type):
    b = body(format_name, event_type, CATALOGUE[event_type].example)
    SHAPES[format_name](b)
    if format_name == "discord":
        assert b["embeds"][0]["timestamp"] == "2026-05-17T12:34:56Z", "the event's time"
    shown = shown_text(format_name, b)
    for expected in SHOWN[event_type]:
        assert expected in shown, (expected, shown)


@pytest.mark.parametrize("format_name", CHAT)
def test_the_summary_comes_first_where_the_platform_notifies(format_name):
    b = body(format_name, "message.created", message("Hello", visitor_name="Grace"))
    first = {"slack": lambda: b["text"], "discord": lambda: b["content"], "teams": lambda: teams_runs(b)[0]}[format_name]()
    assert first == "Grace wrote on web"


@pytest.mark.parametrize("sender, summary", [("ai", "AI replied to Grace on web"), ("agent", "Agent replied to Grace on web")])
def test_a_reply_says_who_replied_to_whom(sender, summary):
    assert body("slack", "message.created", message("Hello", sender_type=sender, visitor_name="Grace"))["text"] == summary


# --- the link back to the conversation ---------------------------------------------------------------
def link_of(format_name: str, b: dict) -> str | None:
    if format_name == "slack":
        found = re.search(r"<(https?://[^|>]+)\|", b["blocks"][-1]["elements"][-1]["text"])
        return found.group(1) if found else None
    if format_name == "discord":
        return b["embeds"][0].get("url")
    actions = b["attachments"][0]["content"].get("actions", [])
    return actions[0]["url"] if actions else None


@pytest.mark.parametrize("format_name", CHAT)
def test_a_link_to_the_conversation_when_the_public_url_is_set(format_name, settings):
    settings.AGENTBOT_PUBLIC_URL = PUBLIC
    for event_type in ("conversation.created", "message.created", "ticket.updated", "lead.submit"):
        b = body(format_name, event_type, CATALOGUE[event_type].example)
        assert link_of(format_name, b) == f"{PUBLIC}/admin/domain/conversation/conv_xyz/change/", event_type
    webhook_event = body(format_name, "webhook.disabled", CATALOGUE["webhook.disabled"].example)
    assert link_of(format_name, webhook_event) == f"{PUBLIC}/admin/subscriptions/webhook/wh_123/change/"


@pytest.mark.parametrize("format_name", CHAT)
def test_no_link_without_the_public_url(format_name, settings):
    settings.AGENTBOT_PUBLIC_URL = ""
    assert link_of(format_name, body(format_name, "message.created", CATALOGUE["message.created"].example)) is None


# --- escaping ---------------------------------------------------------------------------------------
HOSTILE = "Tom & Jerry <!channel> <@U123> <https://evil.example|click> **bold** _it_ ~x~ `code` [bank](https://evil.example)"


def test_slack_escapes_ampersand_and_angle_brackets_in_every_mrkdwn_text():
    b = body("slack", "message.created", message(HOSTILE, visitor_name="A&B <Ltd>"))
    assert b["text"] == "A&amp;B &lt;Ltd&gt; wrote on web"
    section = next(block for block in b["blocks"] if block["type"] == "section" and "text" in block)
    assert section["text"]["text"] == slack_escape(HOSTILE)
    assert "&lt;!channel&gt;" in section["text"]["text"] and "<" not in section["text"]["text"]
    assert section["text"]["verbatim"] is True, "no automatic mentions or links from the visitor's text"
    fields = next(block["fields"] for block in b["blocks"] if "fields" in block)
    assert {"type": "mrkdwn", "text": "*Visitor*\nA&amp;B &lt;Ltd&gt;", "verbatim": True} in fields
    # the header is plain_text: shown as written, never parsed
    assert b["blocks"][0]["text"]["text"] == "A&B <Ltd> wrote on web"


@pytest.mark.parametrize("text", ["@everyone look", "hi @here", "@EveryOne", "<@123456789> and <@&987> and <@!42>"])
def test_discord_never_pings(text):
    b = body("discord", "message.created", message(text, visitor_name="@everyone"))
    assert b["allowed_mentions"] == {"parse": []}
    rendered = json.dumps(b, ensure_ascii=False)
    assert not re.search(r"@(everyone|here)", rendered, re.IGNORECASE)
    assert not re.search(r"<@[!&]?\d", rendered)


def test_discord_escapes_markdown_so_the_text_shows_as_written():
    text = HOSTILE + "\n# not a heading\n> not a quote\n- not a list\n1. nor this ||spoiler||"
    b = body("discord", "message.created", message(text))
    description = b["embeds"][0]["description"]
    assert "\\*\\*bold\\*\\*" in description and "\\[bank\\]" in description and "\\|\\|spoiler\\|\\|" in description
    assert "\n\\# not a heading" in description and "\n\\> not a quote" in description and "\n\\- not a list" in description
    assert re.sub(r"\\(.)", r"\1", description).replace("\u200b", "") == text, "undoing the escapes gives the text back"


def test_teams_shows_markdown_looking_text_as_written():
    b = body("teams", "message.created", message(HOSTILE + " <at>Sam</at>"))
    assert HOSTILE + " <at>Sam</at>" in teams_runs(b)
    assert "entities" not in json.dumps(b), "no mention entities: nobody is mentioned"


# --- long text cut to the limits -------------------------------------------------------------------
LONG = ("Ça coûte combien ? 💶 & <b> " * 4000).strip()  # 100 000+ characters, emoji and escapes
LONG_NAME = "Ada " * 200


@pytest.mark.parametrize("format_name", CHAT)
def test_long_text_and_names_are_cut_to_the_platforms_limits(format_name):
    data = message(LONG, visitor_name=LONG_NAME, visitor_email="a" * 3000 + "@example.com")
    b = body(format_name, "message.created", data)
    SHAPES[format_name](b)
    assert "…" in shown_text(format_name, b)


def test_slack_cut_text_ends_with_an_ellipsis_and_never_splits_an_entity():
    section = next(
        block
        for block in body("slack", "message.created", message(LONG))["blocks"]
        if block["type"] == "section" and "text" in block
    )
    text = section["text"]["text"]
    assert text.endswith("…") and units(text) <= SLACK_SECTION_CHARS
    assert not re.search(r"&(?!amp;|lt;|gt;)", text)


def test_discord_embed_stays_under_its_total_with_many_long_fields():
    data = {f"field_{n}": "x" * 2000 for n in range(40)}
    embed = body("discord", "custom.event", data)["embeds"][0]
    assert len(embed["fields"]) == 25 and discord_embed_total(embed) <= DISCORD_EMBED_CHARS


def test_teams_card_stays_under_its_size_with_long_fields_and_text():
    data = {
        **CATALOGUE["lead.submit"].example,
        "content": "漢字" * 20000,
        "first_name": "名" * 5000,
        "uri": "https://e.example/" + "p" * 5000,
    }
    b = body("teams", "lead.submit", data)
    assert_teams_shape(b)


def test_fit_cuts_before_escaping_so_no_escape_is_split():
    assert fit("&" * 100, 10, slack_escape) == "&amp;…"
    assert fit("short", 10, slack_escape) == "short"
    assert units(fit("💶" * 10, 5)) <= 5


# --- no signature, and each platform's success rule ----------------------------------------------------
@pytest.mark.parametrize("format_name", CHAT)
def test_chat_formats_are_not_signed(format_name):
    headers = get_format(format_name).headers(Signing("dlv_1", "webhook.test", b"{}", ["whsec_x"], 1))
    assert set(headers) == {"Content-Type", "User-Agent", "X-Agentbot-Delivery-Id"}


@pytest.mark.parametrize(
    "rule, status, answer, ok",
    [
        (slack_success, 200, b"ok", True),
        (slack_success, 200, b"invalid_payload", False),
        (slack_success, 200, b"not ok", False),
        (slack_success, 204, b"", False),
        (slack_success, 400, b"invalid_payload", False),
        (slack_success, 429, b"ok", False),
        (discord_success, 204, b"", True),
        (discord_success, 200, b'{"id":"1234","channel_id":"5"}', True),  # ?wait=true
        (discord_success, 200, b"", False),
        (discord_success, 200, b'{"message":"nope"}', False),
        (discord_success, 429, b'{"retry_after":1.5}', False),
        (teams_success, 202, b"", True),
        (teams_success, 200, b"1", True),
        (teams_success, 204, b"", False),
        (teams_success, 400, b"", False),
    ],
)
def test_success_rules(rule, status, answer, ok):
    assert rule(status, answer) is ok


# --- any data an integrator may publish ------------------------------------------------------------
FIELD_NAMES = sorted({name for t in CATALOGUE.values() for name in t.schema["properties"]})
values = json_values(strings=storable_text, max_leaves=10)
chat_data = st.dictionaries(
    st.sampled_from(FIELD_NAMES),
    values | st.text(alphabet="@<>&*_~`|[]#-\n 💶aé", max_size=3000) | st.dictionaries(st.sampled_from(FIELD_NAMES), values),
)


@hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_type=st.sampled_from(list(CATALOGUE)), data=chat_data, format_name=st.sampled_from(CHAT))
def test_any_data_renders_in_the_platforms_shape_and_never_pings(event_type, data, format_name):
    b = body(format_name, event_type, data)
    SHAPES[format_name](b)
    if format_name == "discord":
        assert not re.search(r"@(everyone|here)|<@[!&]?\d", json.dumps(b, ensure_ascii=False), re.IGNORECASE)


# --- a failed answer: gone for good (the webhook is disabled, the delivery ends) or worth another attempt
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
