"""What the webhook channel answers: a synchronous answer in the response, and the
reply format of the asynchronous mode's messages, posted to the instance's POST_URL.

The reply format is one message per delivery, in the instance's API version; signed like the
agentbot format with the reply destination's own secret (shown in the instance's create and
rotate responses).
"""

from django.utils import timezone

from deliveries.formats.signed import agentbot_sign
from deliveries.formats.types import DEFAULT_SCHEDULE, DeliveryFormat, Envelope, is_2xx, iso_utc, object_or_empty, text_or_none
from domain.models import Conversation, Message
from inbound.models import ApiVersion
from subscriptions.event_types import CHANNEL_REPLY
from subscriptions.models import WebhookFormat

# The end of the agent's turn, as the responses' `endReason` says it.
FULFILLED = "Fulfilled"  # the agent answered
AGENT_TRANSFER = "AgentTransfer"  # a human has the conversation: the agent stays silent
CONNECTED = "Connected"  # ON_CONNECT opened (or found) the session
SESSION_CLOSED = "SessionClosed"  # SESSION_CLOSURE closed it

# The task the agent finished, as endOfTask's `completedTaskId` and `completedTaskName` say it
# (seed 003 names the fields; the tasks are Agentbot's): answering the visitor, handing the
# conversation to a person, the lead form (answered), and the two session events.
TASK_ANSWER = ("answer", "Answer the visitor")
TASK_HANDOFF = ("handoff", "Hand the conversation to a person")
TASK_LEAD_FORM = ("lead_form", "Lead form")
TASK_CONNECT = ("connect", "Open the session")
TASK_CLOSE = ("session_closure", "Close the session")
TASKS_BY_REASON = {FULFILLED: TASK_ANSWER, AGENT_TRANSFER: TASK_HANDOFF, CONNECTED: TASK_CONNECT, SESSION_CLOSED: TASK_CLOSE}


def completed_task(end_reason: str, task: tuple[str, str] | None = None) -> dict:
    task_id, task_name = task or TASKS_BY_REASON.get(end_reason, ("", ""))
    return {"completedTaskId": task_id, "completedTaskName": task_name}


def items_v2(text, form, created_on, message_id) -> list[dict]:
    """One of the agent's messages as v2 `data` items: its text, then the form it asks the visitor
    to fill in (a `template` whose val is the form's definition; the visitor answers with formData)."""
    items = [{"type": "text", "val": text, "createdOn": created_on, "messageId": message_id}]
    if isinstance(form, dict):
        items.append({"type": "template", "val": form, "createdOn": created_on, "messageId": message_id})
    return items


def message_v2(message: Message) -> list[dict]:
    form = (message.metadata or {}).get("form")
    return items_v2(message.body, form, iso_utc(message.created_at), message.id)


def task_of(messages: list[Message]) -> tuple[str, str] | None:
    """The task the turn's last message says the agent finished (a form answered), if any."""
    if messages and (messages[-1].metadata or {}).get("completed_task") == TASK_LEAD_FORM[0]:
        return TASK_LEAD_FORM
    return None


def answer_body(
    *,
    api_version: str,
    site_id: str,
    user_id: str,
    messages: list[Message],
    conversation: Conversation | None,
    end_reason: str,
    task: tuple[str, str] | None = None,
) -> dict:
    """A synchronous answer: the agent's messages of this turn as an array, and how the turn ended."""
    if api_version == ApiVersion.V1:
        # v1's text array holds strings and objects: a form's definition follows its message's text.
        texts = [[m.body, *([m.metadata["form"]] if (m.metadata or {}).get("form") else [])] for m in messages]
        body: dict = {"text": [t for group in texts for t in group], "messageIds": [m.id for m in messages]}
    else:
        body = {"data": [item for m in messages for item in message_v2(m)]}
    body.update(
        {
            "from": {"id": site_id},
            "to": {"id": user_id},
            "sessionId": conversation.id if conversation else None,
            "endOfTask": True,
            "endReason": end_reason,
            **completed_task(end_reason, task),
            "createdOn": iso_utc(timezone.now()),
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
        task = (text_or_none(e.data.get("completed_task_id")), text_or_none(e.data.get("completed_task_name")))
        end = {
            **addressing,
            "endOfTask": True,
            "endReason": e.data["end_reason"],
            **completed_task(e.data["end_reason"], task if all(task) else None),
            "createdOn": created_on,
        }
        if text_or_none(e.data.get("handoff_reason")):
            end["handoff"] = {"reason": e.data["handoff_reason"]}
        return end if recipient.get("api_version") == "v1" else {**end, "_v": "v2"}
    form = e.data.get("form") if isinstance(e.data.get("form"), dict) else None
    if recipient.get("api_version") == "v1":
        return {"text": [text, form] if form else text, "messageId": message_id, "createdOn": created_on, **addressing}
    return {"data": items_v2(text, form, created_on, message_id), **addressing, "_v": "v2"}


REPLY_FORMAT = DeliveryFormat(
    WebhookFormat.WEBHOOK_CHANNEL,
    reply_body,
    agentbot_sign,
    is_2xx,
    DEFAULT_SCHEDULE,
    carries=lambda t: t == CHANNEL_REPLY.name,
)
