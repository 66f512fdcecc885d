"""Rendering is linear in its input and has a time and size budget: a body that overruns either is a
failed attempt that says why, never a delivery left pending with no attempt."""

import dataclasses
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from deliveries import chat_formats, engine, formats
from deliveries.chat_formats import discord_escape, fit, slack_escape
from deliveries.models import Attempt, Delivery
from deliveries.services.publish import event_publish
from deliveries.services.send import deliveries_send

pytestmark = pytest.mark.django_db(transaction=True)

DATA = {"conversation_id": "conv_1", "message_id": "msg_1", "sender_type": "visitor", "body": "hi"}


@pytest.fixture(autouse=True)
def _engine_stopped_afterwards():
    yield
    engine.engine_stop(timeout=5)


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
    assert chat_formats._DISCORD_LINE_START.search("\n" * 10 + "x") is None


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
    assert len(fields) == chat_formats.TEAMS_FIELDS
    assert all(len(block["inlines"][0]["text"]) <= chat_formats.TEAMS_FIELD_NAME_CHARS + 2 for block in fields)


def test_slack_field_names_are_cut_so_the_field_stays_within_its_limit():
    field = chat_formats.slack_field("n&" * 5000, "v" * 5000)
    assert chat_formats.units(field["text"]) <= chat_formats.SLACK_FIELD_CHARS


# --- the budgets: a failed attempt with the reason -----------------------------------------------
def publish(site) -> Delivery:
    with transaction.atomic():
        event, _ = event_publish(site=site, event_type="message.created", data=DATA)
    return event.deliveries.get()


def test_a_body_over_the_size_budget_fails_at_once_with_the_reason(site, webhook_factory, receiver, settings):
    settings.AGENTBOT_RENDER_MAX_BYTES = 100
    webhook_factory(site=site, url=receiver.url)
    delivery = publish(site)

    deliveries_send(ids=[delivery.id], token=delivery.lease_token)

    failed = Delivery.objects.get(pk=delivery.pk)
    assert (failed.status, failed.attempt_count) == ("failed", 1)
    (attempt,) = Attempt.objects.filter(delivery=delivery)
    assert "AGENTBOT_RENDER_MAX_BYTES" in attempt.error and not attempt.succeeded
    assert receiver.received == [], "nothing was sent"


def test_a_render_over_the_time_budget_is_a_failed_attempt_and_moves_on_its_schedule(
    site, webhook_factory, receiver, settings, monkeypatch
):
    settings.AGENTBOT_RENDER_BUDGET = 0.05
    webhook_factory(site=site, url=receiver.url)
    delivery = publish(site)
    agentbot = formats.FORMATS["agentbot"]

    def slow_body(envelope):
        time.sleep(0.2)
        return agentbot.build_body(envelope)

    monkeypatch.setitem(formats.FORMATS, "agentbot", dataclasses.replace(agentbot, build_body=slow_body))

    deliveries_send(ids=[delivery.id], token=delivery.lease_token, wait=False)

    moved = Delivery.objects.get(pk=delivery.pk)
    assert (moved.status, moved.attempt_count, moved.schedule_position) == ("pending", 1, 1)
    assert moved.next_attempt_at > timezone.now() + timedelta(seconds=30), "the schedule's next step"
    (attempt,) = Attempt.objects.filter(delivery=delivery)
    assert "AGENTBOT_RENDER_BUDGET" in attempt.error
    assert receiver.received == []
