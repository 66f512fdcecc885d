"""Publish: check an event, store it and one delivery per subscribed webhook, and hand the
deliveries to the workers once the caller's transaction commits."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import Refused
from core.models import Site
from core.text import text_is_storable
from deliveries import bulk, jsjson, outbox
from deliveries.formats import get_format
from deliveries.models import Event
from deliveries.services.leases import dispatch_until
from subscriptions.event_types import CATALOGUE, CONNECTOR_EVENTS
from subscriptions.models import Webhook, ordering_key_for, subscribed


class PublishError(Refused):
    """The event cannot be published as given; the message says why, for the caller."""

    code = "invalid_event"


class EventTooLarge(PublishError):
    status_code = 413
    code = "payload_too_large"


ORDERING_KEY_MAX = 200


def ordering_key_validate(ordering_key) -> str | None:
    """An event's ordering key: None, or a string of 1 to 200 characters that can be stored."""
    if ordering_key is None:
        return None
    if not isinstance(ordering_key, str) or not 1 <= len(ordering_key) <= ORDERING_KEY_MAX:
        raise PublishError(f"ordering_key must be a string of 1 to {ORDERING_KEY_MAX} characters")
    if not text_is_storable(ordering_key):
        raise PublishError("ordering_key contains a NUL character or an unpaired surrogate, which cannot be stored")
    return ordering_key


def event_validate(*, event_type: str, data, connector: bool = False) -> str:
    """Check what is to be published and return its data rendered as every delivery will carry it
    (JavaScript's serialisation, jsjson.dumps): what passes here is stored as that text and sent
    as it is, so nothing a worker does later can find it unsendable.

    `connector`: the service itself publishes to one connector webhook, which may take the
    connector event types as well as the catalogue's."""
    if event_type not in CATALOGUE and not (connector and event_type in CONNECTOR_EVENTS):
        known = ", ".join(sorted(CATALOGUE))
        raise PublishError(f"unknown event type {event_type!r}; known types: {known}")
    if not isinstance(data, dict):
        raise PublishError("data must be a JSON object")
    try:
        jsjson.check_safe(data, path="data")
    except jsjson.UnsafeJSONError as exc:
        raise PublishError(str(exc)) from exc
    unstorable = _unstorable_text(data, "data")
    if unstorable:
        raise PublishError(f"{unstorable} contains a NUL character or an unpaired surrogate, which cannot be stored")
    rendered = jsjson.dumps(data)
    limit = settings.AGENTBOT_MAX_EVENT_DATA_BYTES
    if len(rendered) > limit:
        raise EventTooLarge(f"data is {len(rendered)} bytes once serialised; the limit is {limit} bytes ({limit // 1024} KB)")
    return rendered.decode("utf-8")


def _unstorable_text(value, path: str) -> str | None:
    """The path of the first string (or key) PostgreSQL cannot store: NUL, or not valid UTF-8."""
    if isinstance(value, str):
        return None if text_is_storable(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            found = _unstorable_text(key, f"{path} key {key!r}") or _unstorable_text(item, f"{path}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _unstorable_text(item, f"{path}[{index}]")
            if found:
                return found
    return None


def event_publish(
    *,
    site: Site,
    event_type: str,
    data: dict,
    idempotency_key: str | None = None,
    only_webhook: Webhook | None = None,
    ordering_key: str | None = None,
) -> tuple[Event, bool]:
    """Store the event and one delivery per subscribed webhook, in the caller's transaction.

    Returns (event, created). With an idempotency key already used on this site the stored event
    is returned and nothing new is sent. Workers are kicked only when the transaction commits, so
    a rollback stores and sends nothing. `ordering_key`: a webhook ordered by key sends the events
    of one key one at a time, in publish order (docs/ordering.md); the domain's events carry their
    conversation's id.
    """
    data_json = event_validate(event_type=event_type, data=data, connector=only_webhook is not None)
    ordering_key = ordering_key_validate(ordering_key)
    fields = {"ordering_key": ordering_key} if ordering_key is not None else {}
    # Inside the caller's transaction no savepoint of its own (two round trips per event): a
    # failure here fails the caller's transaction, which is what a publish that did not happen means.
    with transaction.atomic(savepoint=False):
        if idempotency_key:
            existing = Event.objects.filter(site=site, idempotency_key=idempotency_key).first()
            if existing:
                return existing, False
            try:
                # A savepoint only where a concurrent publish with the same key can win the race.
                with transaction.atomic():
                    event = Event.objects.create(site=site, type=event_type, data=data, idempotency_key=idempotency_key, **fields)
            except IntegrityError:
                return Event.objects.get(site=site, idempotency_key=idempotency_key), False
        elif only_webhook is not None:
            event = Event.objects.create(site=site, type=event_type, data=data, **fields)
        # Only what the choice needs (loading the secrets would decrypt each one), read now: the
        # caller's copy of a webhook may predate its circuit opening.
        if only_webhook is not None:
            webhooks = bulk.webhook_candidates(webhook_id=only_webhook.pk)
        else:
            if idempotency_key:
                candidates = bulk.webhook_candidates(site_id=site.pk)
            else:  # the usual publish: the event stored and the webhooks read in one statement
                event, candidates = bulk.event_create(
                    site_id=site.pk, event_type=event_type, data=data, data_json=data_json, ordering_key=ordering_key
                )
            webhooks = [
                w for w in candidates if subscribed(w.events, event_type, data) and get_format(w.format).carries(event_type)
            ]
        now = timezone.now()
        token = outbox.this_process().token()
        flowing = [w.id for w in webhooks if not w.held]
        # A paused webhook's deliveries are stored and wait for it to be enabled again; an open
        # circuit's are stored and held, its probes let them through later.
        held = [w.id for w in webhooks if w.held]
        keys = {w.id: ordering_key_for(w.ordering, ordering_key) for w in webhooks}
        # An ordered webhook's key is locked until commit, so its deliveries are numbered in commit order.
        bulk.keys_lock(keys=[f"{w}\x1f{k}" for w, k in keys.items() if k is not None])
        behind: list[str] = []
        sent = bulk.deliveries_create(
            event_id=event.id,
            webhook_ids=flowing,
            keys=[keys[w] for w in flowing],
            now=now,
            until=dispatch_until(now),
            token=token,
            behind=behind,
        )
        waiting = bulk.deliveries_create(
            event_id=event.id, webhook_ids=held, keys=[keys[w] for w in held], now=now, until=None, token=None
        )
        ids = [delivery_id for delivery_id, _ in sent if delivery_id not in behind]
        if ids:
            # Batched with other publishes of this process by deliveries/outbox.py.
            transaction.on_commit(lambda: outbox.this_process().put(ids, token))
        if behind:
            # Sent when the one before ends; if it ended while this transaction was open, its
            # worker could not see these yet: the outbox looks once more after the commit.
            transaction.on_commit(lambda: outbox.this_process().put_behind(behind))
    event.published = Published(data_json=data_json, deliveries=sent + waiting, at=now)
    return event, True


@dataclass(frozen=True)
class Published:
    """What a publish stored, kept on the new event (`event.published`) for its caller to show
    without reading it back."""

    data_json: str
    deliveries: list[tuple[str, str]]  # (delivery id, webhook id)
    at: datetime
