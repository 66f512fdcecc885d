"""Writes of the agent's domain. Each change publishes its event through the one publish service,
in the same transaction as the write: a rollback stores and sends nothing."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from core.errors import Refused
from core.models import Site
from core.text import text_is_storable
from core.vocabulary import ConversationStatus, SenderType, SessionState, TicketPriority, TicketStatus
from deliveries.services.publish import event_publish
from domain import event_data, hooks
from domain.models import Appointment, ContactRecord, Conversation, Lead, Message, Ticket
from subscriptions.event_types import (
    APPOINTMENT_CREATED,
    CHANNEL_SOURCE_FIELDS,
    CHANNEL_SOURCE_FROM_VISITOR,
    CONVERSATION_CLOSED,
    CONVERSATION_CREATED,
    CONVERSATION_MERGED,
    CONVERSATION_NEEDS_HUMAN,
    LEAD_SUBMIT,
    MESSAGE_CREATED,
    TICKET_CREATED,
    TICKET_TRACKED_FIELDS,
    TICKET_UPDATED,
)

_JSON_TYPES = {"string": str, "integer": int}


def conversation_validate_source(*, channel: str, source) -> dict:
    """`source` may carry only the identifiers the catalogue lists for `channel`, with their types."""
    if source is None:
        return {}
    fields = CHANNEL_SOURCE_FIELDS[channel]
    if not isinstance(source, dict):
        raise ValidationError({"source": f"source must be an object with the {channel} identifiers: {', '.join(fields)}"})
    for name, value in source.items():
        if name not in fields:
            raise ValidationError(
                {"source": f"{name!r} is not a {channel} identifier; a {channel} source has {', '.join(fields)}"}
            )
        types = fields[name]["type"]
        types = [types] if isinstance(types, str) else types
        if not isinstance(value, tuple(_JSON_TYPES[t] for t in types)) or isinstance(value, bool):
            raise ValidationError({f"source.{name}": f"{name} must be a JSON {' or '.join(types)}"})
        if isinstance(value, str) and not text_is_storable(value):
            raise ValidationError({f"source.{name}": f"{name} must not contain NUL or unpaired surrogate characters"})
    return dict(source)


def conversation_source_complete(*, channel: str, source: dict, visitor_phone: str, visitor_email: str) -> dict:
    """The channel's identifiers, with the visitor's phone or email where the channel's identifier
    is one (WhatsApp's and email's `from`) and none was given."""
    visitor = {"phone": visitor_phone, "email": visitor_email}
    completed = dict(source)
    for name, visitor_field in CHANNEL_SOURCE_FROM_VISITOR.get(channel, {}).items():
        if not completed.get(name) and visitor[visitor_field]:
            completed[name] = visitor[visitor_field]
    return completed


class ConversationClosed(Refused):
    """The conversation is closed: nothing more happens in it. The request itself was well formed
    (a 409, not a 400: what it asks for conflicts with the conversation's state)."""

    status_code = 409
    code = "conflict"


def _conversation_require_open(conversation: Conversation) -> None:
    if not conversation.is_open:
        raise ConversationClosed(f"conversation {conversation.id} is closed; start a new one with POST /api/v1/conversations")


def _conversation_of_site(*, site: Site, conversation_id: str | None) -> Conversation | None:
    if not conversation_id:
        return None
    conversation = Conversation.objects.filter(site=site, pk=conversation_id).first()
    if conversation is None:
        raise ValidationError({"conversation_id": f"there is no conversation {conversation_id} on this site"})
    return conversation


# --- conversations and messages ---------------------------------------------------------------
def conversation_create(
    *,
    site: Site,
    channel: str,
    visitor_name: str = "",
    visitor_email: str = "",
    visitor_phone: str = "",
    page_url: str = "",
    source: dict | None = None,
    integration=None,
    external_id: str = "",
    context: dict | None = None,
) -> Conversation:
    source = conversation_source_complete(
        channel=channel,
        source=conversation_validate_source(channel=channel, source=source),
        visitor_phone=visitor_phone,
        visitor_email=visitor_email,
    )
    with transaction.atomic():
        # Numbers count up per site; the row lock serialises the count, not the site's other writes.
        Site.objects.select_for_update(no_key=True).get(pk=site.pk)
        last = Conversation.objects.filter(site=site).aggregate(last=Max("number"))["last"] or 0
        conversation = Conversation.objects.create(
            site=site,
            number=last + 1,
            channel=channel,
            visitor_name=visitor_name,
            visitor_email=visitor_email,
            visitor_phone=visitor_phone,
            page_url=page_url,
            source=source,
            integration=integration,
            external_id=external_id,
            context=context or {},
        )
        event_publish(
            site=site,
            event_type=CONVERSATION_CREATED.name,
            data=event_data.conversation_created(conversation),
            ordering_key=conversation.id,
        )
    return conversation


def message_create(*, conversation: Conversation, sender_type: str, body: str, metadata: dict | None = None) -> Message:
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        _conversation_require_open(conversation)
        message = Message.objects.create(conversation=conversation, sender_type=sender_type, body=body, metadata=metadata or {})
        event_publish(
            site=conversation.site,
            event_type=MESSAGE_CREATED.name,
            data=event_data.message_created(message),
            ordering_key=conversation.id,
        )
        if sender_type == SenderType.AGENT and conversation.integration_id is not None:
            # The inbound side builds on the domain: it registered its relay in domain/hooks.py.
            hooks.person_reply_hooks_run(conversation=conversation, message=message)
    return message


def conversation_handoff(*, conversation: Conversation, reason: str = "") -> Conversation:
    """The AI or an agent asks for a human; the AI session pauses until the conversation closes."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        _conversation_require_open(conversation)
        conversation.needs_human_at = timezone.now()
        conversation.handoff_reason = reason
        conversation.session = SessionState.PAUSED
        conversation.save(update_fields=["needs_human_at", "handoff_reason", "session"])
        event_publish(
            site=conversation.site,
            event_type=CONVERSATION_NEEDS_HUMAN.name,
            data=event_data.conversation_needs_human(conversation),
            ordering_key=conversation.id,
        )
    return conversation


def conversation_close(*, conversation: Conversation) -> Conversation:
    """Close the conversation; closing a closed one changes nothing and publishes nothing."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if not conversation.is_open:
            return conversation
        conversation.status = ConversationStatus.CLOSED
        conversation.session = SessionState.CLOSED
        conversation.closed_at = timezone.now()
        conversation.save(update_fields=["status", "session", "closed_at"])
        event_publish(
            site=conversation.site,
            event_type=CONVERSATION_CLOSED.name,
            data=event_data.conversation_ref(conversation),
            ordering_key=conversation.id,
        )
    return conversation


def conversation_merge(*, source: Conversation | None, target: Conversation, integration_id: str | None = None) -> Conversation:
    """The visitor's conversation `source` (None: they have none on this channel) continues in
    their other open conversation `target`: the source's messages, tickets, leads and appointments
    move to it (keeping their times), the source's shared context joins it and the source closes.
    `integration_id`: the channel the visitor now writes on, which the target follows. One
    `conversation.merged`; nothing is deleted."""
    with transaction.atomic():
        target = Conversation.objects.select_for_update().get(pk=target.pk)
        _conversation_require_open(target)
        moved = 0
        if source is not None:
            source = Conversation.objects.select_for_update().get(pk=source.pk)
            moved = Message.objects.filter(conversation=source).update(conversation=target)
            Ticket.objects.filter(conversation=source).update(conversation=target)
            for record in (Lead, Appointment):
                record.objects.filter(conversation=source).update(conversation=target)
            # The source's addressing is the channel the visitor now writes on: it wins.
            target.context = {**target.context, **source.context}
            source.status = ConversationStatus.CLOSED
            source.session = SessionState.CLOSED
            source.closed_at = timezone.now()
            source.save(update_fields=["status", "session", "closed_at"])
        if integration_id is not None:
            target.integration_id = integration_id
        target.save(update_fields=["context", "integration"])
        event_publish(
            site=target.site,
            event_type=CONVERSATION_MERGED.name,
            data=event_data.conversation_merged(target, merged_id=source.id if source else None, moved=moved),
        )
    return target


def conversation_transfer(*, conversation: Conversation, transfer: dict) -> Conversation:
    """A human operator passed the dialog on, outside Agentbot: the session stays (or becomes)
    paused and the transfer is recorded in the shared conversation context."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        _conversation_require_open(conversation)
        conversation.session = SessionState.PAUSED
        transfers = conversation.context.get("transfers", [])
        # A platform that sends the same transfer again (a redelivered webhook) records it once.
        if not any({k: v for k, v in t.items() if k != "at"} == transfer for t in transfers):
            transfers = [*transfers, {"at": timezone.now().isoformat(), **transfer}]
        conversation.context = {**conversation.context, "transfers": transfers}
        conversation.save(update_fields=["session", "context"])
    return conversation


def conversation_resume(*, conversation: Conversation) -> Conversation:
    """Give an open conversation back to the AI: the session is active again and no longer waits
    for a human (the handoff stays in the event log)."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        _conversation_require_open(conversation)
        conversation.session = SessionState.ACTIVE
        conversation.needs_human_at = None
        conversation.handoff_reason = ""
        conversation.save(update_fields=["session", "needs_human_at", "handoff_reason"])
    return conversation


# --- tickets ----------------------------------------------------------------------------------
def ticket_create(
    *,
    site: Site,
    subject: str,
    conversation_id: str | None = None,
    status: str = TicketStatus.OPEN,
    priority: str = TicketPriority.NORMAL,
    assignee: str = "",
) -> Ticket:
    with transaction.atomic():
        ticket = Ticket.objects.create(
            site=site,
            conversation=_conversation_of_site(site=site, conversation_id=conversation_id),
            subject=subject,
            status=status,
            priority=priority,
            assignee=assignee,
        )
        event_publish(
            site=site, event_type=TICKET_CREATED.name, data=event_data.ticket(ticket), ordering_key=ticket.conversation_id
        )
    return ticket


def ticket_update(*, ticket: Ticket, **changes) -> Ticket:
    """Change the subject, status, priority or assignee; publishes `ticket.updated` with what
    changed, or nothing when the values are the ones the ticket already has."""
    unknown = [name for name in changes if name not in TICKET_TRACKED_FIELDS]
    if unknown:
        raise ValidationError({unknown[0]: f"this field cannot be changed; a ticket changes {', '.join(TICKET_TRACKED_FIELDS)}"})
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
        changed = {}
        for name, value in changes.items():
            before = getattr(ticket, name)
            if value != before:
                changed[name] = {"from": before or None, "to": value or None}
                setattr(ticket, name, value)
        if changed:
            ticket.save(update_fields=[*changed, "updated_at"])
            event_publish(
                site=ticket.site,
                event_type=TICKET_UPDATED.name,
                data=event_data.ticket(ticket, changes=changed),
                ordering_key=ticket.conversation_id,
            )
    return ticket


# --- leads and appointments -------------------------------------------------------------------
def _conversation_learn_visitor(conversation: Conversation, record: ContactRecord) -> None:
    """What the visitor submitted fills in what the conversation did not know yet."""
    known = {
        "visitor_name": " ".join(part for part in (record.first_name, record.last_name) if part),
        "visitor_email": record.email,
        "visitor_phone": record.phone,
    }
    learned = [name for name, value in known.items() if value and not getattr(conversation, name)]
    for name in learned:
        setattr(conversation, name, known[name])
    source = conversation_source_complete(
        channel=conversation.channel,
        source=conversation.source or {},
        visitor_phone=conversation.visitor_phone,
        visitor_email=conversation.visitor_email,
    )
    if source != (conversation.source or {}):
        conversation.source = source
        learned.append("source")
    if learned:
        conversation.save(update_fields=learned)


def _contact_record_create(model: type[ContactRecord], *, site: Site, conversation_id: str | None, **fields) -> ContactRecord:
    if not fields.get("email") and not fields.get("phone"):
        raise ValidationError({"email": "give an email or a phone number (or both), so the visitor can be reached"})
    conversation = _conversation_of_site(site=site, conversation_id=conversation_id)
    record = model.objects.create(site=site, conversation=conversation, **fields)
    if conversation is not None:
        _conversation_learn_visitor(conversation, record)
    return record


def lead_create(*, site: Site, conversation_id: str | None = None, **fields: str) -> Lead:
    """A visitor submitted contact details: first_name, last_name, email, phone, content, uri."""
    with transaction.atomic():
        lead = _contact_record_create(Lead, site=site, conversation_id=conversation_id, **fields)
        event_publish(
            site=site,
            event_type=LEAD_SUBMIT.name,
            data=event_data.contact(lead, id_field="lead_id"),
            ordering_key=lead.conversation_id,
        )
    return lead


def appointment_create(*, site: Site, conversation_id: str | None = None, **fields: str) -> Appointment:
    """A visitor booked an appointment; `content` says what about and when."""
    with transaction.atomic():
        appointment = _contact_record_create(Appointment, site=site, conversation_id=conversation_id, **fields)
        event_publish(
            site=site,
            event_type=APPOINTMENT_CREATED.name,
            data=event_data.contact(appointment, id_field="appointment_id"),
            ordering_key=appointment.conversation_id,
        )
    return appointment
