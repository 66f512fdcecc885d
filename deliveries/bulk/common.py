"""What both implementations of the engine's statements share: the shapes they take and give,
the webhook as sending needs it, and the statements that are plain ORM on every database."""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from django.db.models import Exists, OuterRef, Q

from core.crypto import decrypt
from deliveries.formats.types import Envelope
from deliveries.models import Delivery
from subscriptions.models import Webhook

logger = logging.getLogger(__name__)

PENDING = Delivery.Status.PENDING


@dataclass
class Candidate:
    """What choosing a webhook for an event needs of it."""

    id: str
    events: list[str]
    format: str
    circuit_opened_at: datetime | None
    paused: bool
    ordering: str = "none"
    filter: dict | str | None = None  # the webhook's filter (subscriptions/filters.py), or its JSON text

    @property
    def held(self) -> bool:
        """Its deliveries are stored but not enqueued: paused, or its circuit is open."""
        return self.paused or self.circuit_opened_at is not None


def webhook_candidates(*, site_id: str | None = None, webhook_id: str | None = None) -> list[Candidate]:
    """The site's webhooks that get new events (enabled or paused), or the one webhook
    `webhook_id` whatever its state."""
    if webhook_id:
        found = Webhook.objects.filter(pk=webhook_id)
    else:
        found = Webhook.objects.filter(Q(enabled=True) | Q(disabled_reason=""), site_id=site_id)
    rows = found.values_list("id", "events", "format", "circuit_opened_at", "enabled", "ordering", "filter")
    return [
        Candidate(id, events, format, opened, not enabled, ordering, cond)
        for id, events, format, opened, enabled, ordering, cond in rows
    ]


def heads(queryset):
    """`queryset` less the deliveries that wait behind another of their key: an ordered delivery
    is sendable only while no pending delivery of the same webhook and key comes before it. An
    unordered one (no key) always is."""
    earlier = Delivery.objects.filter(
        Q(sequence__lt=OuterRef("sequence")) | Q(sequence=OuterRef("sequence"), id__lt=OuterRef("id")),
        webhook_id=OuterRef("webhook_id"),
        ordering_key=OuterRef("ordering_key"),
        ordering_key__isnull=False,
        status=PENDING,
    )
    return queryset.exclude(Exists(earlier))


def due_unleased(*, now: datetime):
    """Pending deliveries whose time has come and whose lease (if any) ran out."""
    return Delivery.objects.filter(status=PENDING, next_attempt_at__lte=now).filter(
        Q(leased_until__isnull=True) | Q(leased_until__lt=now)
    )


def due(*, now: datetime):
    """What the sweep may claim: due and unleased, except a paused webhook's (they wait) and an
    open circuit's (it gets probes), and an ordered delivery that waits behind another of its key."""
    flowing = due_unleased(now=now).exclude(webhook__circuit_opened_at__isnull=False).exclude(Webhook.paused_q("webhook__"))
    return heads(flowing)


@dataclass
class Taken:
    """A delivery a worker now holds for one attempt, with what sending it needs. `webhook` is
    None when its row could not be made ready to send (a secret that does not decrypt): `problem`
    says why, and the attempt is recorded as failed with it."""

    id: str
    attempt_count: int
    schedule_position: int
    event: Envelope
    webhook_id: str
    format: str
    webhook: Webhook | None
    problem: str = ""
    ordering_key: str | None = None


# The event's data is returned once per event, not once per delivery of it, as the text stored at
# publish. The ids are joined from `unnest`, each looked up by primary key, and nothing else in the
# WHERE may offer the planner another way in. Only a pending delivery ever carries a lease token
# (recording an outcome clears it), so the token alone says the delivery is still ours; the status
# is checked after the UPDATE. In its WHERE, `status = 'pending'` let the planner read every
# pending delivery through `delivery_due_idx` whenever the statistics said few were pending (a new
# or freshly emptied table, a burst after a quiet spell) and join them with the ids: a take of 30
# ids cost 20-700 ms in the benchmark.


@lru_cache(maxsize=4096)
def _plain(ciphertext: str) -> str:
    """Secrets are stored encrypted; a worker decrypts each distinct ciphertext once."""
    return decrypt(ciphertext) if ciphertext else ""


@lru_cache(maxsize=1024)
def _webhook(
    id,
    url,
    format,
    enabled,
    disabled_reason,
    secret,
    previous_secret,
    previous_secret_expires_at,
    exchange="",
    routing_key="",
    broker_password="",
    headers="{}",
    auth="{}",
    auth_secret="",
    rate_limit="null",
    tls_client_cert="",
    tls_client_key="",
    tls_ca_cert="",
) -> Webhook:
    """What sending needs of a webhook, built once per version of its row (read-only)."""
    return Webhook(
        id=id,
        url=url,
        format=format,
        enabled=enabled,
        disabled_reason=disabled_reason,
        secret=_plain(secret),
        previous_secret=_plain(previous_secret),
        previous_secret_expires_at=previous_secret_expires_at,
        exchange=exchange,
        routing_key=routing_key,
        broker_password=_plain(broker_password),
        headers=json.loads(headers),
        auth=json.loads(auth),
        auth_secret=_plain(auth_secret),
        rate_limit=json.loads(rate_limit) if rate_limit else None,
        tls_client_cert=tls_client_cert,
        tls_client_key=_plain(tls_client_key),
        tls_ca_cert=tls_ca_cert,
    )


def _ready(build: Callable[[], Webhook]) -> tuple[Webhook | None, str]:
    """The webhook, or why it cannot sign: one webhook's bad row must not stop the batch."""
    try:
        return build(), ""
    except Exception as exc:
        logger.exception("webhook row cannot be made ready to send")
        reason = str(exc) if isinstance(exc, ValueError) else type(exc).__name__  # crypto's message names no secret
        return None, f"the webhook cannot sign: {reason}"


@dataclass
class AttemptRecord:
    """One attempt to store and the state its delivery moves to."""

    delivery_id: str
    token: str
    number: int
    at: datetime
    status_code: int | None
    request_headers: dict
    response_headers: dict
    response_body: str
    duration_ms: int
    error: str
    succeeded: bool
    status: str
    schedule_position: int
    next_attempt_at: datetime | None


# One statement: move every delivery still held by its token on, and store every attempt whose
# delivery still exists (the HTTP exchange happened, even if the lease was lost meanwhile). The
# batch travels as one JSON document: psycopg would adapt fourteen arrays element by element in
# Python, which cost the recorder more CPU than everything else it does.


def release(*, ids: list[str], token: str, **fields) -> int:
    """Set `fields` on the deliveries still held by `token` and drop the lease."""
    if not ids:
        return 0
    return Delivery.objects.filter(id__in=ids, lease_token=token).update(leased_until=None, lease_token=None, **fields)
