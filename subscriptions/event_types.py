"""The event catalogue: every type a webhook can subscribe to, with its description and example.

One place for the names: producers, validation, the API catalogue and the docs all read it.
"""

from dataclasses import dataclass, field

ALL_EVENTS = "*"


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    example: dict
    schema: dict = field(default_factory=lambda: {"type": "object"})


def _obj(required: list[str], **props) -> dict:
    return {"type": "object", "required": required, "properties": props, "additionalProperties": True}


_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}

CONVERSATION_CREATED = EventType(
    "conversation.created",
    "A new conversation starts.",
    {
        "conversation_id": "conv_xyz",
        "channel": "web",
        "visitor": {"name": "Ada", "email": "ada@example.com", "phone": None},
        "page_url": "https://example.com/pricing",
    },
    _obj(["conversation_id", "channel"], conversation_id=_STR, channel=_STR, page_url=_STR_OR_NULL),
)
CONVERSATION_CLOSED = EventType(
    "conversation.closed",
    "A conversation is closed by an agent.",
    {"conversation_id": "conv_xyz", "closed_by": "agent"},
    _obj(["conversation_id"], conversation_id=_STR),
)
CONVERSATION_NEEDS_HUMAN = EventType(
    "conversation.needs_human",
    "The AI flags a chat for human handoff.",
    {"conversation_id": "conv_xyz", "reason": "Visitor asked for a refund"},
    _obj(["conversation_id"], conversation_id=_STR, reason=_STR_OR_NULL),
)
MESSAGE_CREATED = EventType(
    "message.created",
    "Any new message: visitor, agent, or AI.",
    {
        "conversation_id": "conv_xyz",
        "message_id": "msg_123",
        "sender_type": "visitor",
        "body": "Hi, what's your pricing?",
        "visitor_email": None,
        "visitor_name": None,
    },
    _obj(
        ["conversation_id", "message_id", "sender_type", "body"],
        conversation_id=_STR,
        message_id=_STR,
        sender_type={"enum": ["visitor", "agent", "ai"]},
        body=_STR,
        visitor_email=_STR_OR_NULL,
        visitor_name=_STR_OR_NULL,
    ),
)
TICKET_CREATED = EventType(
    "ticket.created",
    "A ticket is filed (by AI or manually).",
    {
        "ticket_id": "tkt_123",
        "conversation_id": "conv_xyz",
        "subject": "Refund request",
        "status": "open",
        "priority": "normal",
        "assignee": None,
    },
    _obj(["ticket_id", "subject", "status"], ticket_id=_STR, subject=_STR, status=_STR),
)
TICKET_UPDATED = EventType(
    "ticket.updated",
    "A ticket's status, priority, or assignee changes.",
    {
        "ticket_id": "tkt_123",
        "conversation_id": "conv_xyz",
        "subject": "Refund request",
        "status": "pending",
        "priority": "high",
        "assignee": "sam@example.com",
        "changes": {"status": {"from": "open", "to": "pending"}},
    },
    _obj(["ticket_id", "changes"], ticket_id=_STR, changes={"type": "object"}),
)
LEAD_SUBMIT = EventType(
    "lead.submit",
    "A visitor submits their contact details (name, email, phone).",
    {
        "lead_id": "lead_123",
        "conversation_id": "conv_xyz",
        "first_name": "David",
        "last_name": "Garcia",
        "email": "david@example.com",
        "phone": "+1234567890",
        "content": "Wants a demo",
        "uri": "https://example.com/pricing",
    },
    _obj(["lead_id"], lead_id=_STR),
)
APPOINTMENT_CREATED = EventType(
    "appointment.created",
    "A visitor books an appointment.",
    {
        "appointment_id": "apt_123",
        "conversation_id": "conv_xyz",
        "first_name": "David",
        "last_name": "Garcia",
        "email": "david@example.com",
        "phone": "+1234567890",
        "content": "Demo on Tuesday 10:00",
        "uri": "https://example.com/book",
    },
    _obj(["appointment_id"], appointment_id=_STR),
)
WEBHOOK_TEST = EventType(
    "webhook.test",
    "A test ping sent on request; reaches a webhook whatever it subscribed to.",
    {"webhook_id": "wh_123", "message": "This is a test event from Agentbot."},
    _obj(["webhook_id"], webhook_id=_STR),
)

CATALOGUE: dict[str, EventType] = {
    t.name: t
    for t in (
        CONVERSATION_CREATED,
        CONVERSATION_CLOSED,
        CONVERSATION_NEEDS_HUMAN,
        MESSAGE_CREATED,
        TICKET_CREATED,
        TICKET_UPDATED,
        LEAD_SUBMIT,
        APPOINTMENT_CREATED,
        WEBHOOK_TEST,
    )
}
# Types a webhook can list in its subscription (the test ping reaches every webhook anyway).
SUBSCRIBABLE = [name for name in CATALOGUE if name != WEBHOOK_TEST.name]
