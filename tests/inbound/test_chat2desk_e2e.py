"""Chat2Desk round trips with real parts: the web endpoint, PostgreSQL, Redis, a Celery worker,
a local fake Chat2Desk API and a local subscriber."""

import time

import pytest
from django.test import Client

from agentbot.domain.models import Conversation
from agentbot.inbound.models import InboundEvent
from deliveries.models import Delivery
from tests.inbound.conftest import post_webhook

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def wait_until(check, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout:g} s")


def test_a_client_message_is_stored_published_and_answered_from_the_knowledge_base(
    site, integration, knowledge, chat2desk, receiver, webhook_factory, workers
):
    subscriber = webhook_factory(site=site, url=receiver.url, events=["message.created"])
    workers.start()
    payload = {"text": "What are your opening hours?", "client_id": "12345678", "channel_id": "987654", "transport": "whatsapp"}

    response = post_webhook(Client(), integration, payload)

    assert response.status_code == 200 and response.json() == {"ok": True}
    (sent,) = chat2desk.wait_for(lambda calls: any(c.path == "/v1/messages" for c in calls)) and chat2desk.messages
    assert sent == {
        "client_id": "12345678",
        "text": knowledge.answer,
        "type": "to_client",
        "transport": "whatsapp",
        "channel_id": "987654",
    }
    conversation = Conversation.objects.get(integration=integration)
    assert (conversation.channel, conversation.external_id, conversation.session) == ("whatsapp", "12345678", "active")
    assert [(m.sender_type, m.body) for m in conversation.messages.order_by("created_at")] == [
        ("visitor", payload["text"]),
        ("ai", knowledge.answer),
    ]
    received = receiver.wait_for(2)
    assert sorted(r.headers["x-agentbot-event"] for r in received) == ["message.created", "message.created"]
    event = InboundEvent.objects.get(integration=integration)
    assert event.status == "processed" and "sent as evt_" in event.outcome
    reply = Delivery.objects.get(webhook=integration.reply_webhook)
    wait_until(lambda: Delivery.objects.get(pk=reply.pk).status == "succeeded", what="reply delivery succeeded")
    assert subscriber.deliveries.count() == 2
