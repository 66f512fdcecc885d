"""Chat2Desk's reply format: the agent's reply, posted through Chat2Desk's API.

The integration's reply destination (a Webhook row of its own, inbound/connectors/__init__.py)
posts to `{apiUrl}/v1/messages`; its secret is the integration's API token, which Chat2Desk
takes as the Authorization header.
"""

import json

from deliveries.formats.types import DEFAULT_SCHEDULE, DeliveryFormat, Envelope, Signing, is_2xx, object_or_empty
from subscriptions.event_types import CHANNEL_REPLY
from subscriptions.models import WebhookFormat


def messages_url(api_url: str) -> str:
    return f"{api_url.rstrip('/')}/v1/messages"


def reply_body(e: Envelope) -> dict:
    recipient = object_or_empty(e.data.get("recipient"))
    body = {"client_id": recipient.get("client_id"), "text": e.data.get("text"), "type": "to_client"}
    for name in ("transport", "channel_id"):
        if recipient.get(name) not in (None, ""):
            body[name] = recipient[name]
    return body


def reply_sign(s: Signing) -> dict[str, str]:
    return {"Authorization": s.secrets[0]}


def reply_success(status: int, body: bytes) -> bool:
    """2xx, unless the body is Chat2Desk's `{"status": "error", ...}`."""
    if not is_2xx(status, body):
        return False
    try:
        answer = json.loads(body)
    except ValueError:
        return True
    return not (isinstance(answer, dict) and answer.get("status") == "error")


REPLY_FORMAT = DeliveryFormat(
    WebhookFormat.CHAT2DESK,
    reply_body,
    reply_sign,
    reply_success,
    DEFAULT_SCHEDULE,
    carries=lambda t: t == CHANNEL_REPLY.name,
)
