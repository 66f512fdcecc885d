"""The webhook channel's services: find an instance, apply the v2 session events,
take a message in the instance's mode, and relay a person's replies and the end of the agent's turn.

- synchronous: processed in the request (`inbound_answer`) within the 15 s budget; the answer is
  the agent's messages of this turn;
- synchronous v2 with polling: handed to a worker; the request waits a little
  (AGENTBOT_WEBHOOK_POLL_WAIT) and answers with a pollId when the agent is not done yet;
- asynchronous: handed to a worker; each reply is a delivery to the POST_URL.
"""

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from domain import services as domain
from domain.models import Conversation, Message
from inbound import services
from inbound.connectors.webhook_channel import reply, uploads
from inbound.connectors.webhook_channel.auth import user_identity_matches
from inbound.connectors.webhook_channel.parse import CHANNEL, EVENT_SESSION_CLOSURE, has_user_id, parse
from inbound.models import INBOUND_PENDING, ApiVersion, ChannelMode, ConnectorType, InboundEvent, Integration
from inbound.parsed import Parsed, PayloadError

# The webhook channel's document: "Synchronous Webhook channel requests timeout after 15 seconds."
SYNC_BUDGET = 15.0


class NotFound(Exception):
    pass


def instance_find(*, bot_id: str, instance_id: str | None) -> Integration:
    """`/chatbot/hooks/{botId}`: the site's first webhook channel instance (the oldest);
    `…/hookInstance/{webHookId}`: that instance of the site."""
    found = Integration.objects.select_related("site", "reply_webhook").filter(
        site_id=bot_id, connector_type=ConnectorType.WEBHOOK
    )
    if instance_id is not None:
        found = found.filter(pk=instance_id)
    integration = found.order_by("created_at", "id").first()
    if integration is None:
        what = f"webhook channel instance {instance_id}" if instance_id else "webhook channel instance"
        raise NotFound(f"bot {bot_id} has no {what}; create one with connector_type webhook")
    return integration


def poll_event_find(*, bot_id: str, poll_id: str) -> InboundEvent:
    event = (
        InboundEvent.objects.select_related("integration__site", "conversation")
        .filter(pk=poll_id, integration__site_id=bot_id, integration__connector_type=ConnectorType.WEBHOOK)
        .first()
    )
    if event is None:
        raise NotFound(f"bot {bot_id} has no poll {poll_id}")
    return event


# --- the scopes: anonymous users and auto-registration ----------------------------------------------
ANONYMOUS_PREFIX = "anonymous-"


def anonymous_identity(*, integration: Integration, token: str) -> str:
    """The user a request without `from.id` is, when the instance lets anonymous users chat: the
    same for every request made with the same token (the client's session), another for another
    token. The answer's `to.id` tells the caller, who may send it as `from.id` from then on."""
    digest = hashlib.sha256(f"{integration.id}:{token}".encode()).hexdigest()[:32]
    return ANONYMOUS_PREFIX + digest


def user_known(*, integration: Integration, user_id: str) -> bool:
    """Whether the site has seen this user identity: a conversation of the site is theirs."""
    return Conversation.objects.filter(site_id=integration.site_id, external_id=user_id).exists()


class UserRefused(Exception):
    """The request's user may not chat here (the seed's "Invalid access token"); the message says why."""


def request_admit(*, integration: Integration, body: dict, claims: dict, token: str) -> Parsed:
    """What a caller posted, parsed, with its user decided: the anonymous identity when anonymous
    users may chat and none is given, the token's userIdentity checked, an unknown user refused
    when auto-registration is off, and attachments by fileId checked and described. PayloadError
    (a 400) or UserRefused (a 401)."""
    anonymous_id = None
    if integration.allow_anonymous and not has_user_id(body) and not claims.get("userIdentity"):
        anonymous_id = anonymous_identity(integration=integration, token=token)
    parsed = parse(body, api_version=integration.api_version, anonymous_id=anonymous_id)
    user_id = parsed.payload["client_id"]
    if not user_identity_matches(claims=claims, user_id=user_id):
        raise UserRefused("the token's userIdentity is not from.id")
    if anonymous_id is None and not integration.auto_register and not user_known(integration=integration, user_id=user_id):
        raise UserRefused(
            f"user {user_id!r} is not registered on this site, and this channel instance does not register new users "
            "(auto_register is off)"
        )
    attachments = parsed.payload.get("metadata", {}).get("attachments")
    if attachments and any(item.get("fileId") for item in attachments):
        if integration.api_version != ApiVersion.V2:
            raise PayloadError("attachments by fileId are a v2 feature; this channel instance speaks v1")
        parsed.payload["metadata"]["attachments"] = uploads.attachments_resolve(integration=integration, attachments=attachments)
    return parsed


@dataclass(frozen=True)
class HookAnswer:
    """What the channel answers: the response's JSON body and status."""

    status: int
    body: dict


def _answer(integration: Integration, user_id: str, conversation, messages: list[Message], end_reason: str) -> HookAnswer:
    body = reply.answer_body(
        api_version=integration.api_version,
        site_id=integration.site_id,
        user_id=user_id,
        messages=messages,
        conversation=conversation,
        end_reason=end_reason,
        task=reply.task_of(messages),
    )
    return HookAnswer(200, body)


def _event_answer(event: InboundEvent) -> HookAnswer | None:
    """A message's answer once the agent is done with it; None while it is not. A person's replies
    the caller has not got yet come first, then the agent's of this turn."""
    if event.status in INBOUND_PENDING:
        return None
    replies = services.inbound_replies(event)
    waiting = person_replies_take(conversation_id=event.conversation_id)
    conversation = Conversation.objects.filter(pk=event.conversation_id).first()
    reason = reply.FULFILLED if replies else reply.AGENT_TRANSFER
    return _answer(event.integration, event.payload["client_id"], conversation, [*waiting, *replies], reason)


def _pending_answer(event: InboundEvent) -> HookAnswer:
    body = {"pollId": event.id, "status": "InProgress", "data": [], "endOfTask": False, "_v": "v2"}
    return HookAnswer(200, body)


def poll_answer(*, event: InboundEvent) -> HookAnswer:
    answer = _event_answer(event)
    if answer is None:
        return _pending_answer(event)
    return HookAnswer(200, {"pollId": event.id, "status": "Completed", **answer.body})


def message_take(*, integration: Integration, parsed: Parsed) -> HookAnswer:
    """Store the caller's message and answer it as the instance's mode says."""
    if integration.mode == ChannelMode.ASYNC:
        event = services.inbound_receive(integration=integration, parsed=parsed)
        return HookAnswer(202, {"status": "Accepted", "requestId": event.id})
    if integration.api_version == ApiVersion.V2 and integration.polling:
        event = services.inbound_receive(integration=integration, parsed=parsed)
        event = services.inbound_wait(event_id=event.id, wait=settings.AGENTBOT_WEBHOOK_POLL_WAIT)
        return _event_answer(event) or _pending_answer(event)
    event = services.inbound_receive(integration=integration, parsed=parsed, dispatch=False)
    event = services.inbound_answer(event_id=event.id, wait=SYNC_BUDGET, strict=True)
    answer = _event_answer(event)
    if answer is not None:
        return answer
    # Not answered in time: the sweep finishes it later; the answer is then in the event's log.
    return HookAnswer(
        504,
        {
            "error": "agent_timeout",
            "message": f"the agent did not answer within {SYNC_BUDGET:g} s; the message is kept and answered later "
            "(use asynchronous mode, or v2 with polling, for answers that take longer)",
            "requestId": event.id,
        },
    )


def session_event_apply(*, integration: Integration, parsed: Parsed) -> HookAnswer:
    """ON_CONNECT opens the user's session (or finds the open one), SESSION_CLOSURE closes it;
    applied here, in the request, and logged as a processed inbound event."""
    payload = parsed.payload
    user_id = payload["client_id"]
    with transaction.atomic():
        # Ordered with the user's messages (see inbound/services.py, _accept_message).
        Integration.objects.select_for_update(no_key=True).get(pk=integration.pk)
        conversation = (
            Conversation.objects.filter(integration=integration, external_id=user_id, status="open")
            .order_by("-created_at")
            .first()
        )
        if payload["event"] == EVENT_SESSION_CLOSURE:
            if conversation is None:
                outcome = "SESSION_CLOSURE: no open session"
            else:
                conversation = domain.conversation_close(conversation=conversation)
                outcome = f"SESSION_CLOSURE: session {conversation.id} closed"
            reason = reply.SESSION_CLOSED
        else:
            if conversation is not None and payload["new_session"]:
                domain.conversation_close(conversation=conversation)
                conversation = None
            if conversation is None:
                visitor = payload["visitor"]
                conversation = domain.conversation_create(
                    site=integration.site,
                    channel=CHANNEL,
                    visitor_name=visitor.get("name", ""),
                    visitor_email=visitor.get("email", ""),
                    integration=integration,
                    external_id=user_id,
                    context={ConnectorType.WEBHOOK: payload["addressing"]},
                )
                outcome = f"ON_CONNECT: session {conversation.id} opened"
            else:
                outcome = f"ON_CONNECT: session {conversation.id} continues"
            reason = reply.CONNECTED
        InboundEvent.objects.create(
            integration=integration,
            kind=InboundEvent.Kind.STATUS,
            status=InboundEvent.Status.PROCESSED,
            payload=payload,
            conversation=conversation,
            outcome=outcome,
            attempts=1,
            processed_at=timezone.now(),
        )
    return _answer(integration, user_id, conversation, [], reason)


# --- the asynchronous mode: the POST_URL ------------------------------------------------------------
def posts_to_post_url(integration: Integration) -> bool:
    webhook = integration.reply_webhook
    return integration.mode == ChannelMode.ASYNC and webhook is not None and webhook.enabled


def end_of_task_send(*, event: InboundEvent, conversation: Conversation, handed_off: bool) -> None:
    """The asynchronous mode tells the POST_URL that the agent's turn ended, in a message of its
    own (the webhook channel's document): `endOfTask`, `endReason`, and the handoff's reason."""
    if not posts_to_post_url(event.integration):
        return
    end_reason = reply.AGENT_TRANSFER if handed_off else reply.FULFILLED
    task_id, task_name = reply.task_of(services.inbound_replies(event)) or reply.TASKS_BY_REASON[end_reason]
    fields = {"end_reason": end_reason, "completed_task_id": task_id, "completed_task_name": task_name}
    if handed_off:
        fields["handoff_reason"] = conversation.handoff_reason or "a human has the conversation"
    services.reply_publish(event.integration, conversation, fields, idempotency_key=f"end:{event.id}")


# --- a person's replies ---------------------------------------------------------------------------
# A sync instance's conversation keeps the ids of a person's replies its caller has not got yet
# here, in its context; the caller's next answer (a request or a poll) takes them.
UNRETURNED = "unreturned_replies"


def person_reply_relay(*, conversation: Conversation, message: Message) -> None:
    """A person's reply (the API or the admin, sender `agent`) reaches the caller as the agent's
    does: posted to the POST_URL (async), or returned with the caller's next request or poll
    (sync). Runs in the transaction that stored the message, with the conversation locked."""
    integration = conversation.integration
    if integration.mode == ChannelMode.ASYNC:
        if posts_to_post_url(integration):
            services.reply_publish(
                integration, conversation, {"message_id": message.id, "text": message.body}, idempotency_key=f"reply:{message.id}"
            )
        return
    conversation.context = {**conversation.context, UNRETURNED: [*conversation.context.get(UNRETURNED, []), message.id]}
    conversation.save(update_fields=["context"])


def person_replies_take(*, conversation_id: str | None) -> list[Message]:
    """The person's replies the sync caller has not got yet, oldest first; from now on it has."""
    if conversation_id is None:
        return []
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
        ids = conversation.context.get(UNRETURNED, []) if conversation is not None else []
        if not ids:
            return []
        conversation.context = {k: v for k, v in conversation.context.items() if k != UNRETURNED}
        conversation.save(update_fields=["context"])
    return list(Message.objects.filter(pk__in=ids).order_by("created_at"))
