"""What a webhook's test event looks like when it arrives: the admin shows it on the webhook's page,
so an operator sees the message a Slack, Discord or Teams channel will get before sending it."""

import json
from dataclasses import dataclass

from django.utils import timezone

from deliveries.formats import get_format
from deliveries.formats.chat import CHAT_FORMATS
from deliveries.formats.chat_message import chat_summary
from deliveries.formats.types import Envelope
from subscriptions.event_types import WEBHOOK_TEST
from subscriptions.models import Webhook

TEST_MESSAGE = "This is a test event from Agentbot."
PREVIEW_EVENT_ID = "evt_preview"


def webhook_test_data(*, webhook: Webhook) -> dict:
    return {"webhook_id": webhook.id, "message": TEST_MESSAGE}


@dataclass(frozen=True)
class Preview:
    format: str
    summary: str | None  # the line a chat channel shows (its notification), for the chat formats
    body: str  # the request body, indented to be read


def webhook_test_preview(*, webhook: Webhook) -> Preview:
    envelope = Envelope.of(
        PREVIEW_EVENT_ID, WEBHOOK_TEST.name, webhook.site_id, timezone.now(), webhook_test_data(webhook=webhook)
    )
    body = json.loads(get_format(webhook.format).render(envelope))
    return Preview(
        format=webhook.format,
        summary=chat_summary(envelope) if webhook.format in CHAT_FORMATS else None,
        body=json.dumps(body, indent=2, ensure_ascii=False),
    )
