"""Chat2Desk's services: a stored status event applied to the session it names, and
the register-webhook helper."""

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from domain import services as domain
from domain.models import Conversation
from inbound.connectors.chat2desk import client
from inbound.connectors.chat2desk.parse import SESSION_CLOSE
from inbound.models import ConnectorType, InboundEvent, Integration

# What a reply needs to reach the client: kept in conversation.context["chat2desk"]. Chat2Desk's
# stored messages carry these ids at the payload's top level (they predate `addressing`).
ADDRESSING = ("client_id", "channel_id", "transport", "dialog_id", "request_id")


def addressing_of(payload: dict) -> dict:
    if "addressing" in payload:
        return payload["addressing"]
    return {k: payload[k] for k in ADDRESSING if k in payload}


def status_apply(event: InboundEvent) -> tuple[Conversation | None, str, str]:
    """Close or pause the open session the status event names (by request, dialog or client id):
    (the conversation or None, the event's status, its outcome). The integration is locked."""
    integration, payload = event.integration, event.payload
    key = integration.connector_type
    match = Q(**{f"context__{key}__request_id": payload["request_id"]})
    if "dialog_id" in payload:
        match |= Q(**{f"context__{key}__dialog_id": payload["dialog_id"]})
    if "client_id" in payload:
        match |= Q(external_id=str(payload["client_id"]))
    conversation = (
        Conversation.objects.filter(integration=integration, status="open").filter(match).order_by("-created_at").first()
    )
    if conversation is None:
        return None, InboundEvent.Status.UNMATCHED, _unmatched_outcome(payload)
    detail = {"source": key, **{k: payload[k] for k in ("hook_type", "request_id", "dialog_id") if k in payload}}
    if payload["action"] == SESSION_CLOSE:
        domain.conversation_close(conversation=conversation)
        return conversation, InboundEvent.Status.PROCESSED, f"{payload['hook_type']}: the session is closed"
    domain.conversation_transfer(conversation=conversation, transfer=detail)
    return conversation, InboundEvent.Status.PROCESSED, f"{payload['hook_type']}: the session is paused, the transfer recorded"


def _unmatched_outcome(payload: dict) -> str:
    """Which ids a status event looked for, so a person can tell why it changed nothing."""
    looked_for = [f"{name} {payload[name]}" for name in ("request_id", "dialog_id", "client_id") if name in payload]
    return (
        f"unmatched: no open session of this integration has {' or '.join(looked_for)}; nothing changed. "
        "A session learns its request_id and dialog_id from the client's messages that carry them; "
        "send client_id to match by client."
    )


class NotSupported(Exception):
    pass


def integration_register_webhook(*, integration: Integration, url: str) -> Integration:
    """Register `url` (this integration's webhook URL) with Chat2Desk, or update the registration."""
    if integration.connector_type != ConnectorType.CHAT2DESK:
        raise NotSupported(f"the {integration.connector_type} connector has no webhook to register")
    if not integration.api_url:
        raise NotSupported("set the integration's API URL (Chat2Desk's global or Europe instance) first")
    if not integration.api_token:
        raise NotSupported("set the integration's Chat2Desk API token first")
    with transaction.atomic():
        # One registration at a time per integration: two first calls must not both create one.
        integration = Integration.objects.select_for_update().get(pk=integration.pk)
        remote_id = client.webhook_register(
            api_url=integration.api_url,
            token=integration.api_token,
            url=url,
            name=f"Agentbot {integration.name or integration.id}",
            remote_id=integration.remote_webhook_id,
        )
        integration.remote_webhook_id = remote_id
        integration.webhook_registered_at = timezone.now()
        integration.save(update_fields=["settings", "updated_at"])
    return integration
