"""What the webhook channel answers: a synchronous answer in the response, and the
reply format of the asynchronous mode's messages, posted to the instance's POST_URL.

The reply format is one message per delivery, in the instance's API version; signed like the
agentbot format with the reply destination's own secret (shown in the instance's create and
rotate responses).
"""

from deliveries.formats import (
    DEFAULT_SCHEDULE,
    DeliveryFormat,
    Envelope,
    agentbot_sign,
    is_2xx,
    iso_utc,
    object_or_empty,
    text_or_none,
)
from domain.models import Conversation, Message
from inbound.models import ApiVersion
from subscriptions.event_types import CHANNEL_REPLY
from subscriptions.models import WebhookFormat

# The end of the agent's turn, as the responses' `endReason` says it.
FULFILLED = "Fulfilled"  # the agent answered
AGENT_TRANSFER = "AgentTransfer"  # a human has the conversation: the agent stays silent
CONNECTED = "Connected"  # ON_CONNECT opened (or found) the session
SESSION_CLOSED = "SessionClosed"  # SESSION_CLOSURE closed it


def message_v2(message: Message) -> dict:
    return {"type": "text", "val": message.body, "createdOn": iso_utc(message.created_at), "messageId": message.id}


def answer_body(
    *, api_version: str, site_id: str, user_id: str, messages: list[Message], conversation: Conversation | None, end_reason: str
) -> dict:
    """A synchronous answer: the agent's messages of this turn as an array, and how the turn ended."""
    if api_version == ApiVersion.V1:
        body: dict = {"text": [m.body for m in messages], "messageIds": [m.id for m in messages]}
    else:
        body = {"data": [message_v2(m) for m in messages]}
    body.update(
        {
            "from": {"id": site_id},
            "to": {"id": user_id},
            "sessionId": conversation.id if conversation else None,
            "endOfTask": True,
            "endReason": end_reason,
        }
    )
    if end_reason == AGENT_TRANSFER and conversation is not None:
        body["handoff"] = {"reason": conversation.handoff_reason or "a human has the conversation"}
    if api_version == ApiVersion.V2:
        body["_v"] = "v2"
    return body


# --- the asynchronous mode's reply format ---------------------------------------------------------
def reply_body(e: Envelope) -> dict:
    recipient = object_or_empty(e.data.get("recipient"))
    text, message_id, created_on = e.data.get("text"), e.data.get("message_id"), iso_utc(e.created_at)
    addressing = {"from": {"id": e.site_id}, "to": {"id": recipient.get("user_id")}, "sessionId": e.data.get("conversation_id")}
    if text_or_none(e.data.get("end_reason")):
        # The webhook channel's document: "endOfTask, endReason, … are delivered as a separate message."
        end = {**addressing, "endOfTask": True, "endReason": e.data["end_reason"]}
        if text_or_none(e.data.get("handoff_reason")):
            end["handoff"] = {"reason": e.data["handoff_reason"]}
        return end if recipient.get("api_version") == "v1" else {**end, "_v": "v2"}
    if recipient.get("api_version") == "v1":
        return {"text": text, "messageId": message_id, "createdOn": created_on, **addressing}
    message = {"type": "text", "val": text, "createdOn": created_on, "messageId": message_id}
    return {"data": [message], **addressing, "_v": "v2"}


REPLY_FORMAT = DeliveryFormat(
    WebhookFormat.WEBHOOK_CHANNEL,
    reply_body,
    agentbot_sign,
    is_2xx,
    DEFAULT_SCHEDULE,
    carries=lambda t: t == CHANNEL_REPLY.name,
)
