"""Inbound channels: the pipeline of what the integrations deliver, whatever their connector.

receive → verify → parse (in a connector's view, which answers at once) → store an
`InboundEvent` → enqueue → process (a worker) → answer → reply. What differs per platform is the
integration's connector's (inbound/connectors/), looked up by its `connector_type`.

The stored event is the outbox of the inbound side: if the broker loses the task or a worker
dies, the sweep hands the event out again, so a webhook that got its 200 is never lost. Processing is idempotent (each step checks the event's status
under a row lock), so handing an event out twice does no harm.
"""

import hashlib
import logging
import time
from contextlib import nullcontext
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.db import db_connection_release, purge_in_batches
from deliveries.retention import retention_cutoff
from deliveries.services.publish import event_publish
from domain import services as domain
from domain.models import Conversation, Message
from inbound import forms
from inbound.connectors import connector_of
from inbound.models import INBOUND_PENDING as PENDING
from inbound.models import InboundEvent, Integration
from inbound.parsed import Parsed
from inbound.responder import Answer, ResponderUnavailable, Turn, answering_by, responder
from subscriptions.event_types import CHANNEL_REPLY

logger = logging.getLogger(__name__)

INBOUND_PROCESS_TASK = "inbound.tasks.inbound_process"


# --- receive -----------------------------------------------------------------------------------
def _replay_keys(body: bytes, now) -> tuple[str, str]:
    """The external ids a body without the platform's message id is stored under: its SHA-256 and
    the window it arrived in, and the same for the window before."""
    window = settings.AGENTBOT_INBOUND_REPLAY_WINDOW
    digest = hashlib.sha256(body).hexdigest()
    slot = int(now.timestamp() // window)
    return f"body:{digest}:{slot}", f"body:{digest}:{slot - 1}"


def inbound_receive(*, integration: Integration, parsed: Parsed, dispatch: bool = True, body: bytes = b"") -> InboundEvent:
    """Store what arrived and queue it for a worker when the transaction commits. A delivery the
    platform sends again is stored once when it says which delivery it is (`parsed.external_id`:
    Chat2Desk's message_id, event_id or X-Request-Id). Without one, identical bodies are separate
    messages (a client who writes "yes" twice is answered twice), unless
    AGENTBOT_INBOUND_REPLAY_WINDOW turns body de-duplication on: then a message `body` that arrives
    again within that many seconds is taken for a replay. Status events are never de-duplicated by
    their body: a close sent again is applied again. A channel that answers in its own response
    (`dispatch=False`) processes the event itself with `inbound_answer`; the sweep still finishes
    it should that process die."""
    if parsed.kind == "ignored":
        return InboundEvent.objects.create(
            integration=integration,
            kind=InboundEvent.Kind.OTHER,
            status=InboundEvent.Status.IGNORED,
            payload=parsed.payload,
            outcome=parsed.reason,
            processed_at=timezone.now(),
        )
    external_id = parsed.external_id
    if not external_id and body and parsed.kind == "message" and settings.AGENTBOT_INBOUND_REPLAY_WINDOW > 0:
        now = timezone.now()
        external_id, previous = _replay_keys(body, now)
        window = timedelta(seconds=settings.AGENTBOT_INBOUND_REPLAY_WINDOW)
        earlier = InboundEvent.objects.filter(
            integration=integration, external_id=previous, received_at__gte=now - window
        ).first()
        if earlier is not None:
            return earlier
    try:
        with transaction.atomic():
            event = InboundEvent.objects.create(
                integration=integration, kind=parsed.kind, payload=parsed.payload, external_id=external_id
            )
    except IntegrityError:
        return InboundEvent.objects.get(integration=integration, external_id=external_id)
    if dispatch:
        transaction.on_commit(lambda: inbound_enqueue([event.id]))
    return event


def inbound_answer(*, event_id: str, wait: float, strict: bool = False) -> InboundEvent:
    """Process a stored event here, for a caller waiting on the answer; when another process has
    it, wait up to `wait` seconds for that one to finish. The event as it then stands: its status
    is still pending when the time ran out. `strict`: the model is not waited for past `wait`
    either (a caller that must answer in time); one cut short is retried by the sweep."""
    deadline = time.monotonic() + wait
    try:
        with answering_by(deadline) if strict else nullcontext():
            inbound_process(event_id=event_id)
    except Exception:
        pass  # logged by inbound_process; the event keeps its attempts and the sweep retries it
    return inbound_wait(event_id=event_id, wait=deadline - time.monotonic())


def inbound_wait(*, event_id: str, wait: float) -> InboundEvent:
    """The event once it is no longer pending, or as it stands after `wait` seconds."""
    deadline = time.monotonic() + wait
    event = InboundEvent.objects.get(pk=event_id)
    while event.status in PENDING and time.monotonic() < deadline:
        db_connection_release()  # another process is answering: wait without a pooled connection
        time.sleep(0.05)
        event = InboundEvent.objects.get(pk=event_id)
    return event


def inbound_replies(event: InboundEvent) -> list[Message]:
    """The agent's messages that answered the event, oldest first."""
    found = Message.objects.in_bulk(event.replies)
    return [found[i] for i in event.replies if i in found]


def inbound_enqueue(ids: list[str]) -> None:
    # By the task's name: inbound.tasks imports this module, so importing it back would be a cycle.
    for event_id in ids:
        try:
            current_app.send_task(INBOUND_PROCESS_TASK, args=[event_id])
        except Exception:  # the broker is down: the sweep enqueues the event later
            logger.warning("inbound event not queued; the sweep will pick it up", extra={"inbound_event_id": event_id})


def inbound_sweep(limit: int = 500) -> int:
    """Enqueue stored events no worker finished: never queued, lost by the broker, or retried."""
    ids = list(
        InboundEvent.objects.filter(status__in=PENDING, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )
    inbound_enqueue(ids)
    return len(ids)


def inbound_purge_old(*, batch_size: int = 1000, max_seconds: float = 20.0) -> int:
    """Delete finished inbound events older than AGENTBOT_RETENTION_DAYS, a batch at a time."""
    old = InboundEvent.objects.filter(received_at__lt=retention_cutoff()).exclude(status__in=PENDING)
    return purge_in_batches(old, batch_size=batch_size, max_seconds=max_seconds)


# --- process -----------------------------------------------------------------------------------
def _claim(event_id: str) -> bool:
    """Take the event for one attempt: it is not enqueued again until the lease runs out. An
    event whose attempts are used up (the last one's worker died) fails instead."""
    now = timezone.now()
    due = InboundEvent.objects.filter(pk=event_id, status__in=PENDING, next_attempt_at__lte=now)
    if due.filter(attempts__lt=settings.AGENTBOT_INBOUND_ATTEMPTS).update(
        attempts=F("attempts") + 1, next_attempt_at=now + timedelta(seconds=settings.AGENTBOT_INBOUND_LEASE)
    ):
        return True
    for stuck in due.filter(attempts__gte=settings.AGENTBOT_INBOUND_ATTEMPTS).values_list("id", flat=True):
        _give_up(stuck, "no attempt finished")
    return False


def _give_up(event_id: str, reason: str) -> None:
    """The last attempt failed: the event is `failed`, and a client left without an answer is
    handed to a human rather than left waiting."""
    with transaction.atomic():
        event = InboundEvent.objects.select_for_update().filter(pk=event_id, status__in=PENDING).first()
        if event is None:
            return
        event.outcome = f"gave up after {event.attempts} attempts: {reason}"[:1000]
        _finish(event, InboundEvent.Status.FAILED, event.outcome)
        if event.kind != InboundEvent.Kind.MESSAGE or event.conversation_id is None:
            return
        conversation = Conversation.objects.select_for_update().get(pk=event.conversation_id)
        if conversation.is_open and conversation.session == "active":
            domain.conversation_handoff(conversation=conversation, reason=f"The agent could not answer: {reason}"[:2000])


def _finish(event: InboundEvent, status: str, outcome: str) -> None:
    event.status = status
    event.outcome = outcome
    event.processed_at = timezone.now()
    event.save(update_fields=["status", "outcome", "processed_at", "conversation"])


def inbound_process(*, event_id: str) -> str | None:
    """Apply one stored event; the status it ends in, or None when it was not this worker's to do."""
    if not _claim(event_id):
        return None
    try:
        return _process(event_id)
    except Exception as exc:
        # Kept for the next attempt (after the lease), or failed when none is left; the log says why.
        logger.exception("inbound event failed", extra={"inbound_event_id": event_id})
        reason = f"{type(exc).__name__}: {exc}"[:500]
        if InboundEvent.objects.filter(pk=event_id, attempts__gte=settings.AGENTBOT_INBOUND_ATTEMPTS).exists():
            _give_up(event_id, reason)
        else:
            InboundEvent.objects.filter(pk=event_id).update(outcome=reason)
        raise


def _process(event_id: str) -> str:
    with transaction.atomic():
        event = InboundEvent.objects.select_for_update().select_related("integration__site").get(pk=event_id)
        if event.status == InboundEvent.Status.RECEIVED:
            if event.kind == InboundEvent.Kind.STATUS:
                _apply_status(event)
                return event.status
            _accept_message(event)
        if event.status != InboundEvent.Status.ACCEPTED:
            return event.status
    return _reply(event)


def _conversation_of_client(integration: Integration, client_id) -> Conversation | None:
    return (
        Conversation.objects.filter(integration=integration, external_id=str(client_id), status="open")
        .order_by("-created_at")
        .first()
    )


# A stored message's payload, whatever connector parsed it:
#   text, client_id          required: the visitor's message and their id at the integration
#   channel                  the conversation's channel (the connector's channel_of: Chat2Desk's
#                            comes from `transport`)
#   addressing               what the reply destination needs, kept in conversation.context[connector
#                            type] (the connector's addressing: Chat2Desk's are top-level ids)
#   new_session              true: close the visitor's open conversation and start another
#   visitor, page_url        {name, email, phone} and the page, for a conversation it opens
#   source                   the channel's identifiers of the visitor (the catalogue's, per channel)
#   context                  merged into the conversation's shared context (session tags)
#   metadata                 kept on the visitor's Message (message tags, attachments)
def _accept_message(event: InboundEvent) -> None:
    """The client's message joins their open conversation, or opens one (a new session)."""
    integration, payload = event.integration, event.payload
    # One client's messages are applied one at a time, so two cannot open two conversations.
    Integration.objects.select_for_update(no_key=True).get(pk=integration.pk)
    key = integration.connector_type
    connector = connector_of(key)
    addressing = connector.addressing(payload)
    conversation = _conversation_of_client(integration, payload["client_id"])
    if conversation is not None and payload.get("new_session"):
        domain.conversation_close(conversation=conversation)
        conversation = None
    if (payload.get("metadata") or {}).get("mergeIdentity"):
        conversation = _merge_identity(integration, payload["client_id"], conversation)
    if conversation is None:
        visitor = payload.get("visitor") or {}
        conversation = domain.conversation_create(
            site=integration.site,
            channel=connector.channel_of(payload),
            visitor_name=visitor.get("name", ""),
            visitor_email=visitor.get("email", ""),
            visitor_phone=visitor.get("phone", ""),
            page_url=payload.get("page_url", ""),
            source=payload.get("source"),
            integration=integration,
            external_id=str(payload["client_id"]),
            context={**payload.get("context", {}), key: addressing},
        )
    else:
        # The latest addressing wins: a new request or channel in the same dialog is answered there.
        known = conversation.context.get(key, {})
        # One level deep: a message's session tags join the session's, they do not replace them.
        added = {
            name: {**conversation.context[name], **value}
            if isinstance(value, dict) and isinstance(conversation.context.get(name), dict)
            else value
            for name, value in payload.get("context", {}).items()
        }
        merged = {**conversation.context, **added, key: {**known, **addressing}}
        if merged != conversation.context:
            conversation.context = merged
            conversation.save(update_fields=["context"])
    domain.message_create(
        conversation=conversation, sender_type="visitor", body=payload["text"], metadata=payload.get("metadata")
    )
    event.conversation = conversation
    if conversation.session == "active":
        event.status = InboundEvent.Status.ACCEPTED
        event.save(update_fields=["status", "conversation"])
    else:
        _finish(
            event,
            InboundEvent.Status.PROCESSED,
            "stored; the session is paused (a human has the dialog), so the agent stays silent",
        )


def _merge_identity(integration: Integration, client_id, conversation: Conversation | None) -> Conversation | None:
    """mergeIdentity (the webhook channel): the visitor's conversation here continues in their other
    open conversation on the site (the same user id, another channel or instance), which follows
    them to this integration; without another, nothing changes."""
    other = (
        Conversation.objects.filter(site_id=integration.site_id, external_id=str(client_id), status="open")
        .exclude(pk=conversation.pk if conversation is not None else None)
        .order_by("-created_at")
        .first()
    )
    if other is None:
        return conversation
    if conversation is not None:
        InboundEvent.objects.filter(conversation=conversation).update(conversation=other)
    return domain.conversation_merge(source=conversation, target=other, integration_id=integration.id)


def _apply_status(event: InboundEvent) -> None:
    """The connector applies a status event (Chat2Desk's: an operator closed or took the dialog)."""
    integration = event.integration
    # Ordered with the client's messages (see _accept_message): a close cannot slip in between
    # a message finding its open conversation and joining it.
    Integration.objects.select_for_update(no_key=True).get(pk=integration.pk)
    conversation, status, outcome = connector_of(integration.connector_type).status_apply(event)
    if conversation is not None:
        event.conversation = conversation
    _finish(event, status, outcome)


def _history(conversation: Conversation) -> list[Turn]:
    recent = Message.objects.filter(conversation=conversation).order_by("-created_at")[:20]
    return [Turn(m.sender_type, m.body) for m in reversed(recent)]


def _reply(event: InboundEvent) -> str:
    """Ask the responder (outside any transaction: a model may take seconds), then store its
    answer and send it, or hand the conversation to a human."""
    conversation = event.conversation
    form_data = forms.form_of(event.payload)
    try:
        if form_data is not None:
            answer = Answer()  # the visitor answered a form: the form decides the reply, not the responder
        else:
            answer = responder().answer(site=conversation.site, question=event.payload["text"], history=_history(conversation))
    except ResponderUnavailable as exc:
        if event.attempts < settings.AGENTBOT_INBOUND_ATTEMPTS:
            InboundEvent.objects.filter(pk=event.pk).update(outcome=f"attempt {event.attempts}: {exc}")
            return event.status
        answer = Answer(handoff_reason=f"The agent could not answer: {exc}")
    with transaction.atomic():
        event = InboundEvent.objects.select_for_update(of=("self",)).select_related("integration").get(pk=event.pk)
        if event.status != InboundEvent.Status.ACCEPTED:
            return event.status
        conversation = Conversation.objects.select_for_update().get(pk=event.conversation_id)
        if conversation.session != "active":
            _finish(event, InboundEvent.Status.PROCESSED, f"not answered: the session became {conversation.session}")
            return event.status
        if form_data is not None:
            text, metadata = _form_answered(conversation, form_data)
            answer = Answer(text=text)
        else:
            metadata = {"form": forms.lead_form_definition(site_name=conversation.site.name)} if answer.form else None
        if not answer.text:
            conversation = domain.conversation_handoff(conversation=conversation, reason=answer.handoff_reason)
            connector_of(event.integration.connector_type).turn_ended(event=event, conversation=conversation, handed_off=True)
            _finish(event, InboundEvent.Status.PROCESSED, f"handed to a human: {answer.handoff_reason}")
            return event.status
        message = domain.message_create(conversation=conversation, sender_type="ai", body=answer.text, metadata=metadata)
        event.replies = [*event.replies, message.id]
        event.save(update_fields=["replies"])
        outcome = _send_reply(event.integration, conversation, message)
        connector_of(event.integration.connector_type).turn_ended(event=event, conversation=conversation, handed_off=False)
        _finish(event, InboundEvent.Status.PROCESSED, outcome)
    return event.status


def _form_answered(conversation: Conversation, val: dict) -> tuple[str, dict]:
    """The visitor sent the lead form's data: valid, a lead (lead.submit, once: the event is
    finished in this transaction) and thanks; invalid, the form again with each field's error.
    The reply's text and metadata."""
    fields, errors = forms.lead_form_clean(val)
    if errors:
        form = forms.lead_form_definition(site_name=conversation.site.name, errors=errors, values=val)
        return forms.FIX_TEXT, {"form": form}
    lead = domain.lead_create(site=conversation.site, conversation_id=conversation.id, **fields)
    return forms.THANKS_TEXT.format(name=fields["first_name"]), {"completed_task": forms.LEAD_FORM, "lead_id": lead.id}


def _send_reply(integration: Integration, conversation: Conversation, message: Message) -> str:
    """Queue the reply to the integration's reply destination, unless the
    connector returns it to the caller; what happened, for the event's log."""
    if connector_of(integration.connector_type).replies_returned(integration):
        return f"answered with {message.id}, returned to the caller"
    webhook = integration.reply_webhook
    if webhook is None or not webhook.enabled:
        return f"answered with {message.id}, not sent: the integration has no API URL and token, or is inactive"
    fields = {"message_id": message.id, "text": message.body}
    if (message.metadata or {}).get("form"):
        fields["form"] = message.metadata["form"]
    reply = reply_publish(integration, conversation, fields, idempotency_key=f"reply:{message.id}")
    return f"answered with {message.id}, sent as {reply.id}"


def reply_publish(integration: Integration, conversation: Conversation, fields: dict, *, idempotency_key: str):
    """A `channel.reply` to the integration's reply destination alone: a message, or an end of turn."""
    reply, _ = event_publish(
        site=integration.site,
        event_type=CHANNEL_REPLY.name,
        data={
            "conversation_id": conversation.id,
            "connector": integration.connector_type,
            **fields,
            "recipient": conversation.context.get(integration.connector_type, {}),
        },
        idempotency_key=idempotency_key,
        only_webhook=integration.reply_webhook,
        # The reply destination is ordered by key: a conversation's replies reach the channel in turn.
        ordering_key=conversation.id,
    )
    return reply


# --- a person's replies ---------------------------------------------------------------------------
def person_reply_relay(*, conversation: Conversation, message: Message) -> None:
    """A person wrote (sender `agent`) in a conversation of an integration: its connector relays
    it, in the transaction that stored the message (registered in domain/hooks.py at ready())."""
    integration = conversation.integration
    if integration is not None:
        connector_of(integration.connector_type).person_reply(conversation=conversation, message=message)
