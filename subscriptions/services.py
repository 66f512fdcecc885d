"""Writes for subscriptions: create, change, rotate and delete webhooks."""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core.models import Site
from subscriptions.event_types import ALL_EVENTS, SUBSCRIPTION_NAMES
from subscriptions.models import SUBSCRIBER_FORMATS, Webhook, WebhookFormat, generate_secret
from subscriptions.url_policy import UrlNotAllowed, check_url


def webhook_validate_url(url: str) -> str:
    url = (url or "").strip()
    if not url:
        raise ValidationError({"url": "a URL is required, as in https://example.com/hooks"})
    if len(url) > 2048:
        raise ValidationError({"url": "the URL is longer than 2048 characters"})
    try:
        check_url(url)
    except UrlNotAllowed as exc:
        raise ValidationError({"url": str(exc)}) from exc
    return url


def webhook_validate_events(events) -> list[str]:
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise ValidationError({"events": 'events must be a list of event types, or ["*"] for all'})
    if not events:
        raise ValidationError({"events": 'pick at least one event type, or ["*"] for all'})
    unknown = [e for e in events if e != ALL_EVENTS and e not in SUBSCRIPTION_NAMES]
    if unknown:
        raise ValidationError(
            {"events": f"unknown event type {unknown[0]!r}; known types: {', '.join(SUBSCRIPTION_NAMES)}, or *"}
        )
    return list(dict.fromkeys(events))


def webhook_validate_format(fmt: str) -> str:
    if fmt not in SUBSCRIBER_FORMATS:
        raise ValidationError({"format": f"unknown format {fmt!r}; choose one of {', '.join(SUBSCRIBER_FORMATS)}"})
    return fmt


def webhook_create(
    *,
    site: Site,
    url: str,
    events: list[str],
    format: str = WebhookFormat.AGENTBOT,
    description: str = "",
    enabled: bool = True,
) -> Webhook:
    webhook = Webhook(
        site=site,
        url=webhook_validate_url(url),
        events=webhook_validate_events(events),
        format=webhook_validate_format(format),
        description=description or "",
        enabled=enabled,
        secret=generate_secret(),
    )
    webhook.save()
    return webhook


def webhook_update(*, webhook: Webhook, **changes) -> Webhook:
    validators = {
        "url": webhook_validate_url,
        "events": webhook_validate_events,
        "format": webhook_validate_format,
    }
    for field, value in changes.items():
        if field not in {"url", "events", "format", "description", "enabled"}:
            raise ValidationError({field: "this field cannot be changed"})
        setattr(webhook, field, validators[field](value) if field in validators else value)
    fields = set(changes)
    if changes.get("enabled") is True:
        fields |= webhook_health_reset(webhook)
    # Only what changed: the engine writes the health fields of the same row concurrently.
    webhook.save(update_fields=[*fields, "updated_at"])
    return webhook


HEALTH_FIELDS = (
    "disabled_reason", "disabled_at", "consecutive_failures", "failing_since", "circuit_opened_at", "circuit_probe_at",
)


def webhook_health_reset(webhook: Webhook) -> set[str]:
    """A fresh start on re-enabling: no disable reason, no failing streak, circuit closed."""
    webhook.disabled_reason, webhook.disabled_at = "", None
    webhook.consecutive_failures, webhook.failing_since = 0, None
    webhook.circuit_opened_at = webhook.circuit_probe_at = None
    return set(HEALTH_FIELDS)


def webhook_rotate_secret(*, webhook: Webhook, grace: timedelta | None = None) -> Webhook:
    """A new secret now; the old one still signs (beside the new) until the grace period ends."""
    grace = settings.AGENTBOT_SECRET_GRACE if grace is None else grace
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().get(pk=webhook.pk)
        if grace.total_seconds() > 0:
            webhook.previous_secret = webhook.secret
            webhook.previous_secret_expires_at = timezone.now() + grace
        else:
            webhook.previous_secret, webhook.previous_secret_expires_at = "", None
        webhook.secret = generate_secret()
        webhook.save()
    return webhook


def webhook_delete(*, webhook: Webhook) -> None:
    """Delete the webhook and its delivery log. Its row is locked first, so a publish in flight
    either commits its deliveries before (and they are deleted with it) or skips the webhook
    (deliveries/bulk.py inserts only for webhooks that still exist, under KEY SHARE)."""
    with transaction.atomic():
        locked = Webhook.objects.select_for_update().filter(pk=webhook.pk).first()
        if locked is not None:
            locked.delete()
