"""Rendering the chat formats is linear in its input: only what can be shown is ever escaped. The
time and size budgets of a render are send.py's (tests/deliveries/test_send.py)."""

import pytest

from deliveries.formats import chat
from deliveries.formats.chat import discord_escape, fit, slack_escape


# --- linear: only what can be shown is ever escaped ------------------------------------------------
@pytest.mark.parametrize("escape", [str, slack_escape, discord_escape])
def test_fit_escapes_at_most_limit_characters_however_long_the_text(escape):
    seen: list[int] = []

    def recording(value: str) -> str:
        seen.append(len(value))
        return escape(value)

    text = "\n" * 130_000 + "# **x** & <y>\n1. z\n" * 50_000
    shown = fit(text, 4096, recording)
    assert shown.endswith("…")
    assert seen and max(seen) <= 4096, "a prefix of at most the limit is escaped, never the whole text"


def test_discord_line_start_pattern_never_reaches_past_its_line():
    # Blank lines (spaces, tabs, carriage returns) before a heading: each line is looked at alone.
    assert discord_escape("\n \t\r\n  # heading") == "\n \t\r\n  \\# heading"
    assert chat._DISCORD_LINE_START.search("\n" * 10 + "x") is None


@pytest.mark.parametrize(
    "text, escaped",
    [
        ("1. item", "1\\. item"),
        ("  12. twelfth", "  12\\. twelfth"),
        ("intro\n3. third", "intro\n3\\. third"),
        ("# heading", "\\# heading"),
        ("- item", "\\- item"),
        ("+ item", "\\+ item"),
        ("version 1. not at the start", "version 1. not at the start"),
    ],
)
def test_discord_numbered_lines_are_escaped_before_the_dot_where_discord_drops_the_backslash(text, escaped):
    # Discord keeps a backslash before a digit (`\1. item` shows the backslash) and drops it before
    # punctuation, so `1\. item` is what shows `1. item` without making a list.
    assert discord_escape(text) == escaped


def test_teams_shows_at_most_25_fields_with_names_cut():
    data = {f"{'k' * 1000}{n}": "v" for n in range(5000)}
    from tests.deliveries.test_chat_formats import body

    card = body("teams", "custom.event", data)["attachments"][0]["content"]
    fields = [block for block in card["body"] if block.get("spacing") == "None"]
    assert len(fields) == chat.TEAMS_FIELDS
    assert all(len(block["inlines"][0]["text"]) <= chat.TEAMS_FIELD_NAME_CHARS + 2 for block in fields)


def test_slack_field_names_are_cut_so_the_field_stays_within_its_limit():
    field = chat.slack_field("n&" * 5000, "v" * 5000)
    assert chat.units(field["text"]) <= chat.SLACK_FIELD_CHARS


# --- the budgets: a failed attempt with the reason -----------------------------------------------
