"""An integration's replies are ordered per conversation (docs/ordering.md): its reply webhook
orders by key, and each reply carries its conversation's id as the key."""

import pytest
from django.db import transaction

from deliveries.models import Delivery
from domain import services as domain
from inbound import services

pytestmark = pytest.mark.django_db


def test_chat2desk_replies_are_ordered_by_conversation(site, integration):
    webhook = integration.reply_webhook
    assert webhook.ordering == "key"
    conversation = domain.conversation_create(site=site, channel="whatsapp", integration=integration, external_id="c-1")
    with transaction.atomic():
        first = services.reply_publish(integration, conversation, {"message_id": "m1", "text": "one"}, idempotency_key="r1")
        second = services.reply_publish(integration, conversation, {"message_id": "m2", "text": "two"}, idempotency_key="r2")
    assert first.ordering_key == second.ordering_key == conversation.id
    head, behind = (Delivery.objects.get(event=e, webhook=webhook) for e in (first, second))
    assert head.ordering_key == behind.ordering_key == conversation.id
    assert head.sequence < behind.sequence
    assert head.lease_token is not None and behind.lease_token is None, "the second waits for the first"
