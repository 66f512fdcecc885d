"""Publish: check an event, store it and one delivery per subscribed webhook, and hand the
deliveries to the workers once the caller's transaction commits."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import jsjson
from core.errors import Refused
from core.models import Site
from core.text import text_is_storable
from deliveries import bulk
from deliveries.engine import outbox
from deliveries.engine.outbox import dispatch_until
from deliveries.formats import get_format
from deliveries.models import Event
from subscriptions.event_types import CATALOGUE, CONNECTOR_EVENTS
from subscriptions.filters import filter_matches
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
            webhooks = [w for w in candidates if _receives(w, event_type, data)]
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
            # Batched with other publishes of this process by deliveries/engine/outbox.py.
            transaction.on_commit(lambda: outbox.this_process().put(ids, token))
        if behind:
            # Sent when the one before ends; if it ended while this transaction was open, its
            # worker could not see these yet: the outbox looks once more after the commit.
            transaction.on_commit(lambda: outbox.this_process().put_behind(behind))
    event.published = Published(data_json=data_json, deliveries=sent + waiting, at=now)
    return event, True


def _receives(webhook: bulk.Candidate, event_type: str, data) -> bool:
    """The webhook gets a delivery of this event: subscribed to its type, its format carries it,
    and its filter (if it has one) matches the data."""
    return (
        subscribed(webhook.events, event_type, data)
        and get_format(webhook.format).carries(event_type)
        and (webhook.filter is None or filter_matches(webhook.filter, data))
    )


@dataclass(frozen=True)
class Published:
    """What a publish stored, kept on the new event (`event.published`) for its caller to show
    without reading it back."""

    data_json: str
    deliveries: list[tuple[str, str]]  # (delivery id, webhook id)
    at: datetime


# --- many events at once (POST /api/v1/events/batch) -------------------------------------------

BATCH_MAX_EVENTS = 500


@dataclass(frozen=True)
class BatchItem:
    """One event of a batch, as `event_publish` takes it (its keyword arguments), or why its input
    was refused before the service saw it (`refused`, the API's error for it)."""

    event_type: str = ""
    data: dict | None = None
    idempotency_key: str | None = None
    ordering_key: str | None = None
    refused: Exception | None = None


@dataclass(frozen=True)
class BatchResult:
    """What became of one event of a batch: `created` (a new event), `existing` (its idempotency key
    named an event published before, `event_id`), or `refused` (`error`, as a single publish says it)."""

    outcome: str
    event_id: str | None = None
    error: Exception | None = None
    deliveries: int = 0


def events_publish(*, site: Site, items: list[BatchItem]) -> list[BatchResult]:
    """Publish many events of one site in the caller's transaction, one result per item in order.

    Each is checked as `event_publish` checks it and a refused one stops none of the others. The
    new events are stored in one statement, their deliveries in one more (two where some webhooks
    are held), and handed to the workers together when the transaction commits. An idempotency key
    used before (or earlier in the same batch) gives that event, as publishing it alone would.
    """
    if len(items) > BATCH_MAX_EVENTS:
        raise PublishError(f"a batch holds at most {BATCH_MAX_EVENTS} events; this one has {len(items)}")
    results: list[BatchResult | None] = [None] * len(items)
    rendered: dict[int, str] = {}
    for index, item in enumerate(items):
        if item.refused is not None:
            results[index] = BatchResult("refused", error=item.refused)
            continue
        try:
            rendered[index] = event_validate(event_type=item.event_type, data=item.data)
            ordering_key_validate(item.ordering_key)
        except PublishError as exc:
            results[index] = BatchResult("refused", error=exc)
    with transaction.atomic(savepoint=False):
        keys = {items[i].idempotency_key for i in rendered if items[i].idempotency_key}
        known = (
            dict(Event.objects.filter(site=site, idempotency_key__in=keys).values_list("idempotency_key", "id")) if keys else {}
        )
        new: dict[int, Event] = {}
        first_with_key: dict[str, int] = {}
        for index in rendered:
            key = items[index].idempotency_key
            if key and key in known:
                results[index] = BatchResult("existing", event_id=known[key])
            elif key and key in first_with_key:
                continue  # answered below, once the first one with this key is stored (or lost a race)
            else:
                if key:
                    first_with_key[key] = index
                item = items[index]
                new[index] = Event(
                    site=site,
                    type=item.event_type,
                    data=item.data,
                    idempotency_key=item.idempotency_key,
                    ordering_key=item.ordering_key,
                )
        stored = bulk.events_create(events=list(new.values()), data_json=[rendered[i] for i in new])
        lost = [new[i].idempotency_key for i in new if new[i].pk not in stored]
        if lost:  # a concurrent publish stored these keys first
            known.update(Event.objects.filter(site=site, idempotency_key__in=lost).values_list("idempotency_key", "id"))
        created = {i: e for i, e in new.items() if e.pk in stored}
        for index in rendered:
            key = items[index].idempotency_key
            if index in created:
                results[index] = BatchResult("created", event_id=created[index].pk)
            elif results[index] is None:
                first = first_with_key.get(key)
                event_id = created[first].pk if first in created else known[key]
                results[index] = BatchResult("existing", event_id=event_id)
        counts = _deliveries_store(site=site, events=list(created.values()))
    return [
        r if r.outcome != "created" else BatchResult("created", r.event_id, deliveries=counts.get(r.event_id, 0)) for r in results
    ]


def _deliveries_store(*, site: Site, events: list[Event]) -> dict[str, int]:
    """One delivery per subscribed webhook for each of `events`, handed out on commit; how many each got."""
    if not events:
        return {}
    candidates = bulk.candidates_read(site_id=site.pk)
    flowing, held = [], []
    ordered: list[tuple[Event, list]] = []  # (event, its ordered webhooks), in the batch's order
    for event in events:
        keyed = []
        for w in candidates:
            if _receives(w, event.type, event.data):
                if ordering_key_for(w.ordering, event.ordering_key) is not None:
                    keyed.append(w)
                else:
                    (held if w.held else flowing).append((event.pk, w.id))
        if keyed:
            ordered.append((event, keyed))
    now = timezone.now()
    token = outbox.this_process().token()
    sent = bulk.deliveries_create_many(pairs=flowing, now=now, until=dispatch_until(now), token=token)
    waiting = bulk.deliveries_create_many(pairs=held, now=now, until=None, token=None)
    ids = [delivery_id for delivery_id, _, _ in sent]
    behind: list[str] = []
    if ordered:
        # One event at a time, in the batch's order, as single publishes would store them: each
        # statement sees the deliveries of the one before, so a key's later events wait behind it.
        bulk.keys_lock(
            keys=sorted({f"{w.id}\x1f{ordering_key_for(w.ordering, e.ordering_key)}" for e, keyed in ordered for w in keyed})
        )
        for event, keyed in ordered:
            for group, until, group_token in (
                ([w for w in keyed if not w.held], dispatch_until(now), token),
                ([w for w in keyed if w.held], None, None),
            ):
                made = bulk.deliveries_create(
                    event_id=event.pk,
                    webhook_ids=[w.id for w in group],
                    keys=[ordering_key_for(w.ordering, event.ordering_key) for w in group],
                    now=now,
                    until=until,
                    token=group_token,
                    behind=behind if group_token else None,
                )
                (sent if group_token else waiting).extend((d, event.pk, w) for d, w in made)
                if group_token:
                    ids.extend(d for d, _ in made if d not in behind)
    if ids:
        transaction.on_commit(lambda: outbox.this_process().put(ids, token))
    if behind:
        transaction.on_commit(lambda: outbox.this_process().put_behind(behind))
    counts: dict[str, int] = {}
    for _, event_id, _ in sent + waiting:
        counts[event_id] = counts.get(event_id, 0) + 1
    return counts
