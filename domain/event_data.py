"""The `data` of each domain event, in the shapes of the catalogue (subscriptions.event_types)."""

from domain.models import ContactRecord, Conversation, Message, Ticket


def _or_none(value: str) -> str | None:
    return value or None


def visitor(conversation: Conversation) -> dict:
    return {
        "name": _or_none(conversation.visitor_name),
        "email": _or_none(conversation.visitor_email),
        "phone": _or_none(conversation.visitor_phone),
    }


def conversation_ref(conversation: Conversation) -> dict:
    """conversation.closed, and the start of every conversation event."""
    return {"conversation_id": conversation.id, "channel": conversation.channel, "visitor": visitor(conversation)}


def conversation_created(conversation: Conversation) -> dict:
    return {
        **conversation_ref(conversation),
        "page_url": _or_none(conversation.page_url),
        "source": conversation.source,
    }


def conversation_merged(conversation: Conversation, *, merged_id: str | None, moved: int) -> dict:
    return {**conversation_ref(conversation), "merged_conversation_id": merged_id, "moved_message_count": moved}


def conversation_needs_human(conversation: Conversation) -> dict:
    return {**conversation_ref(conversation), "reason": _or_none(conversation.handoff_reason)}


def attachments(message: Message) -> list[dict]:
    """The message's files that subscribers can fetch (a webhook channel upload's signed link)."""
    found = (message.metadata or {}).get("attachments") or []
    return [
        {"name": a.get("fileName"), "type": a.get("fileType"), "content_type": a.get("contentType"), "url": a["url"]}
        for a in found
        if isinstance(a, dict) and a.get("fileId") and a.get("url")
    ]


def message_created(message: Message) -> dict:
    """The Agentbot webhook format's document's fields first, then what the chatzuri format needs
    for `message.received`, then the message's files when it has any."""
    conversation = message.conversation
    files = attachments(message)
    extra = {"attachments": files} if files else {}
    return {
        "conversation_id": conversation.id,
        "message_id": message.id,
        "sender_type": message.sender_type,
        "body": message.body,
        "visitor_email": _or_none(conversation.visitor_email),
        "visitor_name": _or_none(conversation.visitor_name),
        "channel": conversation.channel,
        "source": conversation.source,
        "page_url": _or_none(conversation.page_url),
        **extra,
    }


def ticket(ticket: Ticket, *, changes: dict | None = None) -> dict:
    data = {
        "ticket_id": ticket.id,
        "conversation_id": ticket.conversation_id,
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "assignee": _or_none(ticket.assignee),
    }
    return data if changes is None else {**data, "changes": changes}


def contact(record: ContactRecord, *, id_field: str) -> dict:
    """lead.submit (`lead_id`) and appointment.created (`appointment_id`)."""
    conversation = record.conversation
    return {
        id_field: record.id,
        "conversation_id": record.conversation_id,
        "session_id": conversation.number if conversation is not None else None,
        "first_name": _or_none(record.first_name),
        "last_name": _or_none(record.last_name),
        "email": _or_none(record.email),
        "phone": _or_none(record.phone),
        "content": _or_none(record.content),
        "uri": _or_none(record.uri),
    }
