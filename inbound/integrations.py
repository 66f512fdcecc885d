"""Integrations: create, change, rotate and delete them, and keep their reply destination in step
with them."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core.models import Site
from inbound.connectors import connector_of
from inbound.connectors.webhook_channel.auth import generate_client_secret
from inbound.connectors.webhook_channel.instance_settings import CHANNEL_FIELDS, channel_settings
from inbound.models import (
    CONNECTOR_SETTINGS,
    SETTING_DEFAULTS,
    ConnectorType,
    Integration,
    generate_client_id,
    generate_inbound_secret,
    generate_jwe_private_key,
)
from inbound.origins import origins_clean
from subscriptions.models import Webhook, WebhookOrdering, generate_secret
from subscriptions.services import webhook_delete, webhook_rotate_secret, webhook_validate_url


def _validate_api_url(api_url: str) -> str:
    if not api_url:
        return ""
    try:
        return webhook_validate_url(api_url).rstrip("/")
    except ValidationError as exc:
        raise ValidationError({"api_url": exc.message_dict.get("url", exc.messages)}) from exc


def _reply_webhook_sync(integration: Integration) -> None:
    """Keep the reply destination in step with the integration, where its connector says
    (Chat2Desk's is `{apiUrl}/v1/messages` with the API token as its secret, the webhook channel's
    the POST_URL, async mode, with a signing secret of its own); disabled when there is nowhere
    to post."""
    webhook = integration.reply_webhook
    target = connector_of(integration.connector_type).reply_destination(integration)
    if isinstance(target, str):
        if webhook is not None and webhook.enabled:
            webhook.enabled = False
            webhook.disabled_reason = target
            webhook.disabled_at = timezone.now()
            webhook.save(update_fields=["enabled", "disabled_reason", "disabled_at", "updated_at"])
        return
    url, reply_format, secret = target.url, target.format, target.secret
    held = target.held or ("" if integration.active else "the integration is inactive")
    if webhook is None:
        # Ordered per conversation: the channel gets a conversation's replies in the order they were made.
        webhook = Webhook(
            site=integration.site,
            events=[],
            format=reply_format,
            connector=integration.connector_type,
            ordering=WebhookOrdering.KEY,
        )
    webhook.url = url
    webhook.ordering = WebhookOrdering.KEY
    webhook.secret = secret or webhook.secret or generate_secret()
    webhook.description = f"Replies of integration {integration.id}"
    webhook.enabled = not held
    webhook.disabled_reason = held
    webhook.disabled_at = (webhook.disabled_at or timezone.now()) if held else None
    webhook.save()
    if integration.reply_webhook_id != webhook.id:
        integration.reply_webhook = webhook
        integration.save(update_fields=["reply_webhook", "updated_at"])


def integration_create(
    *,
    site: Site,
    connector_type: str = ConnectorType.CHAT2DESK,
    name: str = "",
    active: bool = True,
    api_url: str = "",
    api_token: str = "",
    allowed_origins: str = "",
    **channel,
) -> Integration:
    """`channel`: the webhook channel's settings (instance_settings.CHANNEL_FIELDS)."""
    if connector_type not in ConnectorType.values:
        raise ValidationError(
            {"connector_type": f"unknown connector {connector_type!r}; choose one of {', '.join(ConnectorType.values)}"}
        )
    credentials = {}
    if connector_type == ConnectorType.WEBHOOK:
        channel = {**channel_settings(changes=channel, current=None), "client_id": generate_client_id()}
        credentials["client_secret"] = generate_client_secret()
        credentials["jwe_private_key"] = generate_jwe_private_key()
    elif channel:
        raise ValidationError({next(iter(channel)): "only a webhook channel instance (connector_type webhook) has this setting"})
    given = {
        "api_url": _validate_api_url(api_url),
        "allowed_origins": _validate_allowed_origins(connector_type, allowed_origins),
        **channel,
    }
    with transaction.atomic():
        integration = Integration.objects.create(
            site=site,
            connector_type=connector_type,
            name=name,
            active=active,
            api_token=api_token,
            settings=_settings_of(connector_type, given),
            **credentials,
        )
        _reply_webhook_sync(integration)
    return integration


def _settings_of(connector_type: str, given: dict) -> dict:
    """A new integration's settings: every one of its connector's (the defaults, then what was
    given), and another connector's only when given a value (an API URL on a webchat, say)."""
    own = CONNECTOR_SETTINGS[connector_type]
    return {**own, **{name: value for name, value in given.items() if name in own or value != SETTING_DEFAULTS[name]}}


INTEGRATION_EDITABLE = ("name", "active", "api_url", "api_token", "allowed_origins", *CHANNEL_FIELDS)


def _validate_allowed_origins(connector_type: str, text: str) -> str:
    cleaned = origins_clean(text)
    if cleaned and connector_type != ConnectorType.WEBCHAT:
        raise ValidationError({"allowed_origins": "only a webchat integration has allowed origins"})
    return cleaned


def integration_update(*, integration: Integration, **changes) -> Integration:
    unknown = [name for name in changes if name not in INTEGRATION_EDITABLE]
    if unknown:
        raise ValidationError(
            {unknown[0]: f"this field cannot be changed; an integration changes {', '.join(INTEGRATION_EDITABLE)}"}
        )
    if "api_url" in changes:
        changes["api_url"] = _validate_api_url(changes["api_url"])
    if "allowed_origins" in changes:
        changes["allowed_origins"] = _validate_allowed_origins(integration.connector_type, changes["allowed_origins"])
    channel = {name: changes.pop(name) for name in CHANNEL_FIELDS if name in changes}
    if channel and integration.connector_type != ConnectorType.WEBHOOK:
        raise ValidationError({next(iter(channel)): "only a webhook channel instance (connector_type webhook) has this setting"})
    if channel:
        changes.update(channel_settings(changes=channel, current=integration))
    with transaction.atomic():
        integration = Integration.objects.select_for_update().get(pk=integration.pk)
        for name, value in changes.items():
            setattr(integration, name, value)
        integration.save()
        _reply_webhook_sync(integration)
    return integration


def integration_rotate_secret(*, integration: Integration) -> Integration:
    """A new webhook secret; a webhook channel instance's are its client secret (the old one stops
    verifying at once) and its POST_URL signing secret (the old one signs along for a grace period)."""
    if integration.connector_type == ConnectorType.WEBHOOK:
        integration.client_secret = generate_client_secret()
        integration.save(update_fields=["client_secret", "updated_at"])
        if integration.reply_webhook is not None:
            integration.reply_webhook = webhook_rotate_secret(webhook=integration.reply_webhook)
        return integration
    integration.webhook_secret = generate_inbound_secret()
    integration.save(update_fields=["webhook_secret", "updated_at"])
    return integration


def integration_delete(*, integration: Integration) -> None:
    with transaction.atomic():
        if integration.reply_webhook is not None:
            webhook_delete(webhook=integration.reply_webhook)
        integration.delete()
