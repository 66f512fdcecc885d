"""Writes for subscriptions: create, change, rotate and delete webhooks."""

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import OperationalError, transaction
from django.utils import timezone

from core.models import Site
from subscriptions.controls import auth_validate, headers_validate, rate_limit_validate, tls_validate
from subscriptions.event_types import ALL_EVENTS, SUBSCRIPTION_NAMES
from subscriptions.filters import filter_validate
from subscriptions.models import BROKER_FORMATS, SUBSCRIBER_FORMATS, Webhook, WebhookFormat, WebhookOrdering, generate_secret
from subscriptions.url_policy import (
    MASKED_PASSWORD,
    UrlNotAllowed,
    broker_url_masked,
    check_broker_url,
    check_url,
    is_broker_url,
)

logger = logging.getLogger(__name__)


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


# AMQP 0-9-1's exchange-name: at most 127 of these characters ("" is the default exchange).
EXCHANGE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{0,127}$")
# The fields that together say where a webhook's deliveries go.
DESTINATION_FIELDS = ("url", "format", "exchange", "routing_key")


@dataclass(frozen=True)
class Destination:
    """Where a webhook's deliveries go, as stored: a broker URL with its password masked, the
    password apart (to be encrypted), the exchange and routing key (empty for HTTP)."""

    url: str
    format: str
    exchange: str = ""
    routing_key: str = ""
    broker_password: str = ""


def webhook_validate_broker_url(url: str, *, stored_password: str = "") -> tuple[str, str]:
    """(the URL to store, its password) of a broker URL; the password `****` keeps the stored one,
    so a URL written back as it is stored changes nothing."""
    url = (url or "").strip()
    if len(url) > 2048:
        raise ValidationError({"url": "the URL is longer than 2048 characters"})
    try:
        broker = check_broker_url(url)
    except UrlNotAllowed as exc:
        raise ValidationError({"url": str(exc)}) from exc
    masked, password = broker_url_masked(url)
    if broker.password == MASKED_PASSWORD:
        if not stored_password:
            raise ValidationError(
                {"url": "give the broker's password in the URL (**** stands for a stored one, and there is none)"}
            )
        password = stored_password
    return masked, password


def webhook_validate_exchange(exchange) -> str:
    if not isinstance(exchange, str) or not EXCHANGE_NAME.match(exchange):
        raise ValidationError(
            {"exchange": "an exchange name is at most 127 letters, digits, -, _, . or : (empty for the default exchange)"}
        )
    return exchange


def webhook_validate_routing_key(routing_key) -> str:
    if not isinstance(routing_key, str) or len(routing_key.encode()) > 255:
        raise ValidationError({"routing_key": "a routing key is text of at most 255 bytes (empty: the event's type)"})
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in routing_key):
        raise ValidationError({"routing_key": "a routing key must not contain control characters"})
    return routing_key


def webhook_validate_destination(
    *, url: str, format: str, exchange: str = "", routing_key: str = "", stored_password: str = ""
) -> Destination:
    """An HTTP URL, or a broker URL with its exchange and routing key and a format a broker can
    carry: each field on its own, then how they go together."""
    format = webhook_validate_format(format)
    exchange, routing_key = webhook_validate_exchange(exchange), webhook_validate_routing_key(routing_key)
    if not is_broker_url(url):
        try:
            url = webhook_validate_url(url)
        except ValidationError as exc:
            if "http:// or https://" in str(exc):  # a subscriber may also mean a broker
                raise ValidationError(
                    {"url": "the URL must start with http:// or https://, or amqp:// or amqps:// to publish to a RabbitMQ broker"}
                ) from exc
            raise
        if exchange or routing_key:
            field = "exchange" if exchange else "routing_key"
            raise ValidationError({field: "an exchange and a routing key are for amqp:// and amqps:// URLs only"})
        return Destination(url=url, format=format)
    url, password = webhook_validate_broker_url(url, stored_password=stored_password)
    if format not in BROKER_FORMATS:
        raise ValidationError(
            {"format": f"the {format} format cannot go to a message broker; choose one of {', '.join(BROKER_FORMATS)}"}
        )
    return Destination(url=url, format=format, exchange=exchange, routing_key=routing_key, broker_password=password)


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


def webhook_validate_ordering(ordering) -> str:
    if ordering not in WebhookOrdering.values:
        raise ValidationError({"ordering": f"unknown ordering {ordering!r}; choose one of {', '.join(WebhookOrdering.values)}"})
    return ordering


def webhook_create(
    *,
    site: Site,
    url: str,
    events: list[str],
    format: str = WebhookFormat.AGENTBOT,
    description: str = "",
    enabled: bool = True,
    exchange: str = "",
    routing_key: str = "",
    ordering: str = WebhookOrdering.NONE,
    **controls,
) -> Webhook:
    destination = webhook_validate_destination(url=url, format=format, exchange=exchange, routing_key=routing_key)
    with transaction.atomic():
        # The site's row is held while its webhooks are counted: two creates cannot both take the last place.
        Site.objects.select_for_update(no_key=True).filter(pk=site.pk).first()
        webhooks_check_room(site=site)
        return _webhook_insert(site, destination, events, description, enabled, ordering, controls)


def webhooks_check_room(*, site: Site) -> None:
    """A site has at most AGENTBOT_MAX_WEBHOOKS_PER_SITE subscriber webhooks (0: no cap): each
    publish fans out to every one of them (docs/limits.md)."""
    cap = settings.AGENTBOT_MAX_WEBHOOKS_PER_SITE
    if cap and Webhook.objects.filter(site=site, connector="").count() >= cap:
        raise ValidationError(
            f"this site has {cap} webhooks already, the most a site may have (AGENTBOT_MAX_WEBHOOKS_PER_SITE); "
            "delete one it no longer needs, or subscribe one to more events"
        )


def _webhook_insert(site: Site, destination, events, description, enabled, ordering, controls: dict) -> Webhook:
    webhook = Webhook(
        site=site,
        url=destination.url,
        events=webhook_validate_events(events),
        format=destination.format,
        exchange=destination.exchange,
        routing_key=destination.routing_key,
        broker_password=destination.broker_password,
        description=description or "",
        enabled=enabled,
        ordering=webhook_validate_ordering(ordering),
        secret=generate_secret(),
    )
    webhook_controls_apply(webhook, controls)
    webhook.save()
    return webhook


CONTROL_FIELDS = ("headers", "auth", "filter", "rate_limit", "tls_client_cert", "tls_client_key", "tls_ca_cert")
TLS_FIELDS = ("tls_client_cert", "tls_client_key", "tls_ca_cert")


def webhook_controls_apply(webhook: Webhook, changes: dict) -> set[str]:
    """Check and set the delivery controls in `changes` (subscriptions/controls.py); returns the
    fields to save. An auth secret left out keeps the stored one; TLS fields left out stay; an
    empty string removes one."""
    fields: set[str] = set()
    unknown = set(changes) - set(CONTROL_FIELDS)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "this field cannot be changed"})
    if "headers" in changes:
        webhook.headers = headers_validate(changes["headers"])
        fields.add("headers")
    if "auth" in changes:
        auth = auth_validate(changes["auth"], stored=webhook.auth, stored_secret=webhook.auth_secret)
        webhook.auth, webhook.auth_secret = auth.public, auth.secret
        fields |= {"auth", "auth_secret"}
    if "filter" in changes:
        webhook.filter = filter_validate(changes["filter"])
        fields.add("filter")
    if "rate_limit" in changes:
        webhook.rate_limit = rate_limit_validate(changes["rate_limit"])
        fields.add("rate_limit")
    if set(changes) & set(TLS_FIELDS):
        given = {name: changes.get(name, getattr(webhook, name)) for name in TLS_FIELDS}
        webhook.tls_client_cert, webhook.tls_client_key, webhook.tls_ca_cert = tls_validate(
            cert=given["tls_client_cert"], key=given["tls_client_key"], ca=given["tls_ca_cert"]
        )
        fields |= set(TLS_FIELDS)
    if webhook.is_broker and (webhook.auth or webhook.tls_client_cert or webhook.tls_ca_cert):
        raise ValidationError({"auth" if webhook.auth else "tls_client_cert": "auth and client TLS are for http(s) webhooks"})
    return fields


def webhook_update(*, webhook: Webhook, **changes) -> Webhook:
    controls = {field: changes.pop(field) for field in CONTROL_FIELDS if field in changes}
    for field, value in changes.items():
        if field not in {*DESTINATION_FIELDS, "events", "description", "enabled", "ordering"}:
            raise ValidationError({field: "this field cannot be changed"})
        if field == "events":
            value = webhook_validate_events(value)
        if field == "ordering":
            value = webhook_validate_ordering(value)
        if field not in DESTINATION_FIELDS:
            setattr(webhook, field, value)
    fields = set(changes) - set(DESTINATION_FIELDS)
    if set(changes) & set(DESTINATION_FIELDS):
        fields |= webhook_destination_change(webhook, changes)
    if controls or "url" in changes:
        fields |= webhook_controls_apply(webhook, controls)
    if changes.get("enabled") is True:
        fields |= webhook_health_reset(webhook)
    # Only what changed: the engine writes the health fields of the same row concurrently.
    webhook.save(update_fields=[*fields, "updated_at"])
    return webhook


def webhook_destination_change(webhook: Webhook, changes: dict) -> set[str]:
    """Apply changes of the URL, format, exchange or routing key, validated together with what
    they leave as it was; returns the fields to save. A webhook moved to an HTTP URL drops its
    broker fields (unless the change itself gives them, which is an error)."""
    moving_to_http = "url" in changes and not is_broker_url(changes["url"])
    current = {
        "url": webhook.url,
        "format": webhook.format,
        "exchange": "" if moving_to_http else webhook.exchange,
        "routing_key": "" if moving_to_http else webhook.routing_key,
    }
    destination = webhook_validate_destination(
        **{**current, **{k: v for k, v in changes.items() if k in DESTINATION_FIELDS}},
        stored_password=webhook.broker_password,
    )
    webhook.url, webhook.format = destination.url, destination.format
    webhook.exchange, webhook.routing_key = destination.exchange, destination.routing_key
    webhook.broker_password = destination.broker_password
    return {*DESTINATION_FIELDS, "broker_password"}


HEALTH_FIELDS = (
    "disabled_reason",
    "disabled_at",
    "consecutive_failures",
    "failing_since",
    "circuit_opened_at",
    "circuit_probe_at",
    "failing_level",
)


def webhook_health_reset(webhook: Webhook) -> set[str]:
    """A fresh start on re-enabling: no disable reason, no failing streak, circuit closed."""
    webhook.disabled_reason, webhook.disabled_at = "", None
    webhook.consecutive_failures, webhook.failing_since = 0, None
    webhook.circuit_opened_at = webhook.circuit_probe_at = None
    webhook.failing_level = 0
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
    for attempt in range(DELETE_TRIES):
        try:
            with transaction.atomic():
                locked = Webhook.objects.select_for_update().filter(pk=webhook.pk).first()
                if locked is not None:
                    # Its deliveries in id order, the order the worker's recorder locks them in
                    # (deliveries/bulk/postgresql.py), then the collector's deletes; attempts
                    # recorded meanwhile go with their delivery (ON DELETE CASCADE).
                    list(locked.deliveries.order_by("pk").select_for_update().values_list("pk", flat=True))
                    locked.delete()
            return
        except OperationalError as exc:
            # A deadlock with a statement that does not lock in that order: PostgreSQL rolled
            # this transaction back whole, so it is tried again (docs/limits.md).
            if not _is_deadlock(exc) or attempt == DELETE_TRIES - 1:
                raise
            logger.info("deleting webhook %s met a deadlock; trying again", webhook.pk)


DELETE_TRIES = 3


def _is_deadlock(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == "40P01"
