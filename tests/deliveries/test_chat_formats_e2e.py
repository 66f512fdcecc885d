"""Slack, Discord and Teams end to end: the domain API publishes, a real Celery worker posts to a local
receiver standing in for the platform, and the platform's answer decides the delivery."""

import json

import pytest

from deliveries.models import Delivery
from tests.deliveries.test_chat_formats import assert_discord_shape, assert_slack_shape, assert_teams_shape
from tests.deliveries.test_end_to_end import wait_for_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PUBLIC = "https://agent.example.com"
SIGNATURE_HEADERS = {"x-agentbot-signature", "x-webhook-signature", "x-chatzuri-signature", "webhook-signature", "authorization"}


def post(api, path: str, body: dict) -> dict:
    response = api.post(f"/api/v1/{path}", body, format="json")
    assert response.status_code in (200, 201), response.json()
    return response.json()


def attempts(delivery: Delivery) -> list[tuple[int, bool]]:
    return [(a.status_code, a.succeeded) for a in delivery.attempts.order_by("number")]


def test_slack_gets_block_kit_and_only_200_ok_succeeds(api, site, webhook_factory, receiver, workers):
    receiver.responder = lambda n: (200, b"invalid_payload") if n == 1 else (200, b"ok")
    webhook = webhook_factory(site=site, url=receiver.url, events=["message.created"], format="slack")
    workers.start(concurrency=1, AGENTBOT_RETRY_SCHEDULE="0,1", AGENTBOT_PUBLIC_URL=PUBLIC)

    conversation = post(api, "conversations", {"channel": "web", "visitor": {"name": "Ada"}})
    post(api, f"conversations/{conversation['id']}/messages", {"sender_type": "visitor", "body": "Tom & Jerry <!channel>"})

    first, retry = receiver.wait_for(2)
    delivery = wait_for_status(Delivery.objects.get(webhook=webhook).id, "succeeded")
    assert first.body == retry.body
    assert not SIGNATURE_HEADERS & set(first.headers), "the URL is the credential: nothing is signed"
    message = json.loads(first.body)
    assert_slack_shape(message)
    assert message["text"] == "Ada wrote on web"
    assert message["blocks"][2] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "Tom &amp; Jerry &lt;!channel&gt;", "verbatim": True},
    }
    assert f"<{PUBLIC}/admin/domain/conversation/{conversation['id']}/change/|Open the conversation>" in first.body.decode()
    assert attempts(delivery) == [(200, False), (200, True)]
    assert "different response body" in delivery.attempts.get(number=1).error


def test_discord_204_succeeds_and_a_429_retry_after_delays_the_next_attempt(api, site, webhook_factory, receiver, workers):
    limited = b'{"message": "You are being rate limited.", "retry_after": 3.0, "global": false}'
    receiver.responder = lambda n: (429, limited, {"Retry-After": "3"}) if n == 1 else (204, b"")
    webhook = webhook_factory(site=site, url=receiver.url, events=["conversation.needs_human"], format="discord")
    workers.start(concurrency=1, AGENTBOT_RETRY_SCHEDULE="0,2")

    conversation = post(api, "conversations", {"channel": "telegram", "visitor": {"name": "@everyone"}})
    post(api, f"conversations/{conversation['id']}/handoff", {"reason": "**refund** @here"})

    first, retry = receiver.wait_for(2)
    delivery = wait_for_status(Delivery.objects.get(webhook=webhook).id, "succeeded")
    assert retry.at - first.at >= 3.0 - 0.05, "Retry-After 3 s stretches the schedule's 2 s step"
    assert attempts(delivery) == [(429, False), (204, True)]
    message = json.loads(first.body)
    assert_discord_shape(message)
    assert "@everyone" not in first.body.decode() and "@here" not in first.body.decode()
    assert message["embeds"][0]["description"] == "\\*\\*refund\\*\\* @\u200bhere"


def test_teams_gets_an_adaptive_card_and_202_succeeds(api, site, webhook_factory, receiver, workers):
    receiver.responder = lambda n: (202, b"")
    webhook = webhook_factory(site=site, url=receiver.url, events=["ticket.created"], format="teams")
    workers.start(concurrency=1)

    post(api, "tickets", {"subject": "Réclamation **urgent**", "assignee": "sam@example.com"})

    (request,) = receiver.wait_for(1)
    delivery = wait_for_status(Delivery.objects.get(webhook=webhook).id, "succeeded")
    assert attempts(delivery) == [(202, True)]
    card = json.loads(request.body)
    assert_teams_shape(card)
    runs = [run["text"] for block in card["attachments"][0]["content"]["body"] for run in block["inlines"]]
    assert runs[0] == "Ticket opened: Réclamation **urgent**" and "sam@example.com" in runs
