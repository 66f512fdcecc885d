"""The event catalogue: every type a webhook can subscribe to, with its description, the JSON Schema
of its `data` and an example that validates against it.

One place for the names and shapes: producers, the API catalogue, the delivery formats and the docs
all read it. The schemas describe exactly what the agent's domain publishes: every field is listed,
unknown fields are not allowed, and a field the agent does not know is `null`, never missing.
"""

from dataclasses import dataclass

from core.vocabulary import Channel, SenderType, TicketPriority, TicketStatus

ALL_EVENTS = "*"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# --- the agent's vocabulary (core/vocabulary.py) as the schemas spell it ----------------------
_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}

# Per channel, the identifiers a conversation's `source` may carry, in the order the Chatzuri
# document lists them in a `message.received` payload.
CHANNEL_SOURCE_FIELDS: dict[str, dict[str, dict]] = {
    Channel.WHATSAPP: {"from": {**_STR, "description": "the visitor's phone number, as in +1234567890"}},
    Channel.TELEGRAM: {
        "chatId": {"type": ["integer", "string"], "description": "the Telegram chat id, as in 123456789"},
        "username": {**_STR, "description": "the visitor's Telegram username, as in john_doe"},
    },
    Channel.FACEBOOK: {
        "senderId": {**_STR, "description": "the visitor's page-scoped id"},
        "pageId": {**_STR, "description": "the Facebook Page the visitor wrote to"},
    },
    Channel.INSTAGRAM: {"senderId": {**_STR, "description": "the visitor's Instagram-scoped id"}},
    Channel.EMAIL: {
        "from": {**_STR, "description": "the sender's address"},
        "subject": {**_STR, "description": "the subject of the inbound email"},
    },
    Channel.WEB: {"sessionId": {**_STR, "description": "the chat widget's session id"}},
    # Channels that reach Agentbot only through an inbound integration (Chat2Desk's transports);
    # the integration's addressing of the visitor is in the conversation's context, not here.
    Channel.VIBER: {},
    Channel.VK: {},
    Channel.SMS: {},
    Channel.OTHER: {},
}
assert set(CHANNEL_SOURCE_FIELDS) == set(Channel), "every channel has its source fields"
# The source fields that are the visitor's phone number or address: a conversation that knows the
# visitor's phone or email but got no such identifier takes it from there.
CHANNEL_SOURCE_FROM_VISITOR: dict[str, dict[str, str]] = {Channel.WHATSAPP: {"from": "phone"}, Channel.EMAIL: {"from": "email"}}
# The ticket fields whose change publishes `ticket.updated`.
TICKET_TRACKED_FIELDS = ("subject", "status", "priority", "assignee")


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    example: dict
    schema: dict


def _id(prefix: str) -> dict:
    return {"type": "string", "pattern": f"^{prefix}_[A-Za-z0-9_-]+$"}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: dict, *, optional: tuple[str, ...] = (), **extra) -> dict:
    """A closed object: every property listed, all required but `optional`, no others allowed."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


def _data_schema(name: str, description: str, properties: dict, **kwargs) -> dict:
    return {"$schema": JSON_SCHEMA_DIALECT, "title": f"{name} data", "description": description, **_obj(properties, **kwargs)}


def _event(name: str, description: str, example: dict, properties: dict, **kwargs) -> EventType:
    return EventType(name, description, example, _data_schema(name, description, properties, **kwargs))


def _source_schema(channel: str) -> dict:
    return {
        "type": "object",
        "description": f"the {channel} identifiers of the visitor",
        "properties": CHANNEL_SOURCE_FIELDS[channel],
        "additionalProperties": False,
    }


# `source` holds the identifiers of the conversation's channel, and only those.
_SOURCE_MATCHES_CHANNEL = [
    {
        "if": {"properties": {"channel": {"const": channel}}, "required": ["channel"]},
        "then": {"properties": {"source": _source_schema(channel)}},
    }
    for channel in Channel
]

_CONVERSATION_ID = _id("conv")
_CHANNEL = {"enum": Channel.values, "description": "where the conversation takes place"}
_SOURCE = {"type": "object", "description": "the channel's identifiers of the visitor (see CHANNEL_SOURCE_FIELDS)"}
_PAGE_URL = {**_STR_OR_NULL, "description": "the page the conversation started on (web widget)"}
_VISITOR = _obj(
    {"name": _STR_OR_NULL, "email": _STR_OR_NULL, "phone": _STR_OR_NULL},
    description="what the visitor has told about themselves; null when unknown",
)
_CONVERSATION_REF = {"conversation_id": _CONVERSATION_ID, "channel": _CHANNEL, "visitor": _VISITOR}

_EXAMPLE_VISITOR = {"name": "Ada Lovelace", "email": "ada@example.com", "phone": None}
_EXAMPLE_CONVERSATION_REF = {"conversation_id": "conv_xyz", "channel": "web", "visitor": _EXAMPLE_VISITOR}

CONVERSATION_CREATED = _event(
    "conversation.created",
    "A new conversation starts.",
    {
        **_EXAMPLE_CONVERSATION_REF,
        "page_url": "https://example.com/pricing",
        "source": {"sessionId": "session_abc"},
    },
    {**_CONVERSATION_REF, "page_url": _PAGE_URL, "source": _SOURCE},
    allOf=_SOURCE_MATCHES_CHANNEL,
)
CONVERSATION_CLOSED = _event(
    "conversation.closed",
    "A conversation is closed by an agent.",
    dict(_EXAMPLE_CONVERSATION_REF),
    _CONVERSATION_REF,
)
CONVERSATION_NEEDS_HUMAN = _event(
    "conversation.needs_human",
    "The AI (or an agent) flags a chat for human handoff.",
    {**_EXAMPLE_CONVERSATION_REF, "reason": "Visitor asked for a refund"},
    {**_CONVERSATION_REF, "reason": {**_STR_OR_NULL, "description": "why a human is needed"}},
)
CONVERSATION_MERGED = _event(
    "conversation.merged",
    "A visitor's conversation continues in their other open conversation (the webhook channel's "
    "mergeIdentity): the merged conversation's messages, tickets and leads move to it and it closes.",
    {**_EXAMPLE_CONVERSATION_REF, "merged_conversation_id": "conv_abc", "moved_message_count": 3},
    {
        **_CONVERSATION_REF,
        "merged_conversation_id": {
            **_nullable(_CONVERSATION_ID),
            "description": "the conversation that closed into this one; null when the visitor had none on that channel",
        },
        "moved_message_count": {"type": "integer", "minimum": 0, "description": "how many messages moved"},
    },
)
MESSAGE_CREATED = _event(
    "message.created",
    "Any new message: visitor, agent, or AI.",
    {
        "conversation_id": "conv_xyz",
        "message_id": "msg_123",
        "sender_type": "visitor",
        "body": "Hi, what's your pricing?",
        "visitor_email": None,
        "visitor_name": None,
        "channel": "web",
        "source": {"sessionId": "session_abc"},
        "page_url": "https://example.com/pricing",
    },
    {
        "conversation_id": _CONVERSATION_ID,
        "message_id": _id("msg"),
        "sender_type": {"enum": SenderType.values, "description": "who wrote the message"},
        "body": {**_STR, "minLength": 1},
        "visitor_email": _STR_OR_NULL,
        "visitor_name": _STR_OR_NULL,
        "channel": _CHANNEL,
        "source": _SOURCE,
        "page_url": _PAGE_URL,
        "attachments": {
            "type": "array",
            "description": "the message's uploaded files (webhook channel): a signed link that expires fetches each",
            "items": _obj(
                {
                    "name": _STR,
                    "type": {"enum": ["image", "audio", "video", "attachment"]},
                    "content_type": _STR,
                    "url": {**_STR, "description": "the signed link (absolute when AGENTBOT_PUBLIC_URL is set)"},
                }
            ),
        },
    },
    # The first six are the fields of the Agentbot webhook format's document; Agentbot's own
    # conversations add the next three, which the chatzuri format needs, and a message with
    # uploaded files its attachments.
    optional=("channel", "source", "page_url", "attachments"),
    allOf=_SOURCE_MATCHES_CHANNEL,
)

_TICKET = {
    "ticket_id": _id("tkt"),
    "conversation_id": _nullable(_CONVERSATION_ID),
    "subject": {**_STR, "minLength": 1},
    "status": {"enum": TicketStatus.values},
    "priority": {"enum": TicketPriority.values},
    "assignee": {**_STR_OR_NULL, "description": "who works on the ticket, null when nobody"},
}
_EXAMPLE_TICKET = {
    "ticket_id": "tkt_123",
    "conversation_id": "conv_xyz",
    "subject": "Refund request",
    "status": "open",
    "priority": "normal",
    "assignee": None,
}
_CHANGE = _obj({"from": {"type": ["string", "null"]}, "to": {"type": ["string", "null"]}})

TICKET_CREATED = _event("ticket.created", "A ticket is filed (by AI or manually).", dict(_EXAMPLE_TICKET), _TICKET)
TICKET_UPDATED = _event(
    "ticket.updated",
    "A ticket's status, priority, assignee or subject changes; `changes` says what changed, from what to what.",
    {
        **_EXAMPLE_TICKET,
        "status": "pending",
        "assignee": "sam@example.com",
        "changes": {"status": {"from": "open", "to": "pending"}, "assignee": {"from": None, "to": "sam@example.com"}},
    },
    {
        **_TICKET,
        "changes": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"enum": list(TICKET_TRACKED_FIELDS)},
            "additionalProperties": _CHANGE,
        },
    },
)

_CONTACT = {
    "conversation_id": _nullable(_CONVERSATION_ID),
    "session_id": {
        "type": ["integer", "null"],
        "minimum": 1,
        "description": "the conversation's number on its site (the leads format's SessionID)",
    },
    "first_name": _STR_OR_NULL,
    "last_name": _STR_OR_NULL,
    "email": _STR_OR_NULL,
    "phone": _STR_OR_NULL,
    "content": {**_STR_OR_NULL, "description": "remarks, or what the appointment is about"},
    "uri": {**_STR_OR_NULL, "description": "where the visitor submitted it"},
}
_EXAMPLE_CONTACT = {
    "conversation_id": "conv_xyz",
    "session_id": 31305,
    "first_name": "David",
    "last_name": "Garcia",
    "email": "david@example.com",
    "phone": "+1234567890",
}

LEAD_SUBMIT = _event(
    "lead.submit",
    "A visitor submits their contact details (name, email, phone).",
    {"lead_id": "lead_123", **_EXAMPLE_CONTACT, "content": "Wants a demo", "uri": "https://example.com/pricing"},
    {"lead_id": _id("lead"), **_CONTACT},
)
APPOINTMENT_CREATED = _event(
    "appointment.created",
    "A visitor books an appointment.",
    {"appointment_id": "apt_123", **_EXAMPLE_CONTACT, "content": "Demo on Tuesday 10:00", "uri": "https://example.com/book"},
    {"appointment_id": _id("apt"), **_CONTACT},
)
WEBHOOK_TEST = _event(
    "webhook.test",
    "A test ping sent on request; reaches a webhook whatever it subscribed to.",
    {"webhook_id": "wh_123", "message": "This is a test event from Agentbot."},
    {"webhook_id": _id("wh"), "message": _STR},
)
_TIME = {"type": "string", "format": "date-time"}
WEBHOOK_DISABLED = _event(
    "webhook.disabled",
    "A webhook of the site was disabled by the service (410 Gone, or failing for days); re-enable it to resume.",
    {
        "webhook_id": "wh_123",
        "url": "https://crm.example.com/hooks",
        "reason": "the receiver answered 410 Gone",
        "disabled_at": "2026-05-17T12:34:56Z",
    },
    {"webhook_id": _id("wh"), "url": _STR, "reason": _STR, "disabled_at": _TIME},
)
WEBHOOK_CIRCUIT_OPENED = _event(
    "webhook.circuit_opened",
    "A webhook failed many times in a row: its deliveries are held (not lost) and one probe is sent per interval.",
    {
        "webhook_id": "wh_123",
        "url": "https://crm.example.com/hooks",
        "consecutive_failures": 10,
        "next_probe_at": "2026-05-17T12:35:56Z",
    },
    {"webhook_id": _id("wh"), "url": _STR, "consecutive_failures": {"type": "integer"}, "next_probe_at": _TIME},
)
WEBHOOK_FAILING = _event(
    "webhook.failing",
    "A webhook has failed every delivery for a while: its failing streak passed 50, 75 or 90 per cent of the time "
    "after which the service disables it. Fix the receiver before disables_at.",
    {
        "webhook_id": "wh_123",
        "url": "https://crm.example.com/hooks",
        "percent": 50,
        "consecutive_failures": 412,
        "failing_since": "2026-05-15T00:34:56Z",
        "disables_at": "2026-05-20T00:34:56Z",
    },
    {
        "webhook_id": _id("wh"),
        "url": _STR,
        "percent": {"enum": [50, 75, 90]},
        "consecutive_failures": {"type": "integer"},
        "failing_since": _TIME,
        "disables_at": _TIME,
    },
)
WEBHOOK_RECOVERED = _event(
    "webhook.recovered",
    "A webhook that was announced failing (webhook.failing or webhook.circuit_opened) accepted a delivery again.",
    {"webhook_id": "wh_123", "url": "https://crm.example.com/hooks", "recovered_at": "2026-05-17T12:40:00Z"},
    {"webhook_id": _id("wh"), "url": _STR, "recovered_at": _TIME},
)
DELIVERY_EXHAUSTED = _event(
    "delivery.exhausted",
    "A delivery ended failed: its retry schedule ran out (or retrying could not help). Redeliver it once the receiver is fixed.",
    {
        "delivery_id": "dlv_123",
        "event_id": "evt_123",
        "event_type": "message.created",
        "webhook_id": "wh_123",
        "url": "https://crm.example.com/hooks",
        "attempts": 5,
        "last_status_code": 503,
        "last_error": "HTTP 503",
    },
    {
        "delivery_id": _id("dlv"),
        "event_id": _id("evt"),
        "event_type": _STR,
        "webhook_id": _id("wh"),
        "url": _STR,
        "attempts": {"type": "integer"},
        "last_status_code": {"type": ["integer", "null"]},
        "last_error": _STR,
    },
)
# Sent only to webhooks that name it: one per failed delivery is too many for every "*" subscriber
# (a failing one would get one more failing delivery for each of its own).
NAMED_ONLY_EVENTS = frozenset({DELIVERY_EXHAUSTED.name})
# What the service says about its own deliveries: never itself the subject of a delivery.exhausted,
# so a failing owner's webhook does not feed on its own failures.
OPERATIONAL_EVENTS = frozenset(
    {"webhook.disabled", "webhook.circuit_opened", "webhook.failing", "webhook.recovered", "delivery.exhausted"}
)

CATALOGUE: dict[str, EventType] = {
    t.name: t
    for t in (
        CONVERSATION_CREATED,
        CONVERSATION_CLOSED,
        CONVERSATION_NEEDS_HUMAN,
        CONVERSATION_MERGED,
        MESSAGE_CREATED,
        TICKET_CREATED,
        TICKET_UPDATED,
        LEAD_SUBMIT,
        APPOINTMENT_CREATED,
        WEBHOOK_TEST,
        WEBHOOK_DISABLED,
        WEBHOOK_CIRCUIT_OPENED,
        WEBHOOK_FAILING,
        WEBHOOK_RECOVERED,
        DELIVERY_EXHAUSTED,
    )
}
# Types a webhook can list in its subscription (the test ping reaches every webhook anyway).
SUBSCRIBABLE = [name for name in CATALOGUE if name != WEBHOOK_TEST.name]
# The Chatzuri document's name for a visitor's message. A webhook may subscribe to it
# (it is stored as given): it gets the `message.created` events whose sender is the visitor, and
# no others; the chatzuri format names them `message.received` on the wire, the others keep
# `message.created`. Never published under this name, so not in the catalogue.
MESSAGE_RECEIVED = "message.received"
SUBSCRIPTION_NAMES = [*SUBSCRIBABLE, MESSAGE_RECEIVED]

# The agent's reply on an inbound channel, sent by the service to that channel's own endpoint (an
# integration's connector webhook) and to no subscriber: not in the catalogue, not subscribable,
# not publishable through POST /events. Subscribers see the reply as `message.created`.
CHANNEL_REPLY = _event(
    "channel.reply",
    "The agent's (or a person's) reply to a visitor, sent back through the channel the visitor wrote on; "
    "on the webhook channel also the end of the agent's turn (`end_reason`, no message).",
    {
        "conversation_id": "conv_xyz",
        "message_id": "msg_124",
        "connector": "chat2desk",
        "text": "Our opening hours are 9:00 to 18:00.",
        "recipient": {"client_id": "12345678", "channel_id": "987654", "transport": "whatsapp"},
    },
    {
        "conversation_id": _CONVERSATION_ID,
        "message_id": _id("msg"),
        "connector": _STR,
        "text": {**_STR, "minLength": 1},
        "recipient": {"type": "object", "description": "the channel's addressing of the visitor"},
        "end_reason": {
            **_STR,
            "description": "the end of the turn (the webhook channel's endReason): Fulfilled or AgentTransfer",
        },
        "handoff_reason": {**_STR_OR_NULL, "description": "why a human has the conversation (AgentTransfer)"},
        "form": {"type": "object", "description": "a form the visitor is asked to fill in (the webhook channel's lead form)"},
        "completed_task_id": {**_STR, "description": "with end_reason: the task the agent finished (answer, handoff, lead_form)"},
        "completed_task_name": {**_STR, "description": "with end_reason: that task's name"},
    },
    optional=("message_id", "text", "end_reason", "handoff_reason", "form", "completed_task_id", "completed_task_name"),
)
CONNECTOR_EVENTS: dict[str, EventType] = {CHANNEL_REPLY.name: CHANNEL_REPLY}
