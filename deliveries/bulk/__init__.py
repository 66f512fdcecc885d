"""The engine's set-based statements: create, claim, take, record and hand back deliveries a batch
at a time. Callers pass plain values and get plain values back; the decisions (which outcome,
which retry time) are made by the services.

Six of them have two implementations behind this one interface: `postgresql` (each one statement,
what a deployment runs) and `portable` (the ORM, row by row: the embedded SQLite of `make run`).
Both keep the same contract, tested on PostgreSQL side by side (tests/deliveries/test_bulk.py).
The rest are plain ORM on every database (`common`).
"""

from datetime import datetime
from types import ModuleType

from django.db import connection

from deliveries.bulk import portable, postgresql
from deliveries.bulk.common import AttemptRecord, Candidate, Taken, due, due_unleased, heads, release, webhook_candidates
from deliveries.models import Event

__all__ = [
    "Candidate",
    "AttemptRecord",
    "Taken",
    "candidates_read",
    "claim_due",
    "claim_next",
    "claim_stalled",
    "deliveries_create",
    "deliveries_create_many",
    "due",
    "due_unleased",
    "event_create",
    "events_create",
    "heads",
    "keys_lock",
    "record",
    "release",
    "sequences",
    "take",
    "webhook_candidates",
    "webhooks_succeeded",
]

CLAIM_SQL = postgresql.CLAIM_SQL


def implementation() -> ModuleType:
    """The statements for the database in use."""
    return postgresql if connection.vendor == "postgresql" else portable


def event_create(
    *, site_id: str, event_type: str, data: dict, data_json: str, ordering_key: str | None = None
) -> tuple[Event, list[Candidate]]:
    """Store the event and read the site's webhooks that get it (webhook_candidates), in one
    statement on PostgreSQL (the ORM's INSERT and SELECT cost a publish more CPU than the rest of
    it). `data_json` is `data` as the publish already rendered it (jsjson.dumps), stored as it is."""
    return implementation().event_create(
        site_id=site_id, event_type=event_type, data=data, data_json=data_json, ordering_key=ordering_key
    )


def events_create(*, events: list[Event], data_json: list[str]) -> set[str]:
    """Store many new events (unsaved `Event`s, `data_json` each one's data as rendered at publish)
    in one statement on PostgreSQL. An event whose idempotency key its site has used already is
    skipped; the ids of those stored."""
    if not events:
        return set()
    return implementation().events_create(events=events, data_json=data_json)


def candidates_read(*, site_id: str) -> list[Candidate]:
    """The site's webhooks that get new events (webhook_candidates), in one plain statement."""
    return implementation().candidates_read(site_id=site_id)


def deliveries_create(
    *,
    event_id: str,
    webhook_ids: list[str],
    now: datetime,
    until: datetime | None,
    token: str | None,
    keys: list[str | None] | None = None,
    behind: list[str] | None = None,
) -> list[tuple[str, str]]:
    """One delivery per webhook, due `now`, under the dispatch lease `token` until `until`; the
    (delivery id, webhook id) of each stored. A webhook deleted meanwhile gets none. `keys`: the
    ordering key of each (None: unordered), each numbered after every delivery stored before it.
    One stored behind a pending delivery of its key gets no lease (it goes when that one ends):
    its id is added to `behind`, and it must not be handed to the workers."""
    if not webhook_ids:
        return []
    given = {"next_attempt_at": now, "leased_until": until, "lease_token": token}
    keys = list(keys) if keys is not None else [None] * len(webhook_ids)
    created = implementation().deliveries_create(
        given=given, event_ids=[event_id] * len(webhook_ids), webhook_ids=webhook_ids, keys=keys, now=now, behind=behind
    )
    return [(delivery_id, webhook_id) for delivery_id, _, webhook_id in created]


def deliveries_create_many(
    *, pairs: list[tuple[str, str]], now: datetime, until: datetime | None, token: str | None
) -> list[tuple[str, str, str]]:
    """One unordered delivery per (event id, webhook id), in one statement on PostgreSQL, as
    deliveries_create does for one event; the (delivery id, event id, webhook id) of each stored.
    Ordered deliveries go through deliveries_create, one event at a time: rows of one statement
    cannot see each other, so two of one key in one statement would both be its head."""
    if not pairs:
        return []
    given = {"next_attempt_at": now, "leased_until": until, "lease_token": token}
    return implementation().deliveries_create(
        given=given,
        event_ids=[e for e, _ in pairs],
        webhook_ids=[w for _, w in pairs],
        keys=[None] * len(pairs),
        now=now,
    )


def keys_lock(*, keys: list[str]) -> None:
    """Hold each ordering key's publish lock until the caller's transaction ends, so a key's
    deliveries are numbered in the order their publishes commit (nothing on SQLite, whose writes
    are one at a time)."""
    if keys:
        implementation().keys_lock(keys)


def sequences(*, count: int) -> list[int]:
    """`count` places after every delivery stored so far, in every key's order."""
    return implementation().sequences(count) if count else []


def claim_next(*, ids: list[str], now: datetime, until: datetime, token: str) -> list[str]:
    """For each key of the ordered deliveries `ids`: lease its head (its first pending delivery)
    if it is due, unleased and its webhook is not held. Called when a head ends, so the next one
    goes at once rather than at the next sweep."""
    if not ids:
        return []
    return implementation().claim_next(ids=ids, now=now, until=until, token=token)


def claim_due(*, now: datetime, limit: int, until: datetime, token: str) -> list[str]:
    """Lease up to `limit` due deliveries whose lease ran out, oldest due first (along the due index)."""
    return implementation().claim_due(now=now, limit=limit, until=until, token=token)


def claim_stalled(*, now: datetime, limit: int, until: datetime, token: str) -> list[str]:
    """Lease up to `limit` heads of ordering keys that wait with no due time and no lease: the
    hand-out that should have followed their predecessor's end was lost. The sweep's safety net."""
    return implementation().claim_stalled(now=now, limit=limit, until=until, token=token)


def take(
    *, ids: list[str], token: str, until: datetime, skip_webhooks: list[str] = (), hold_until: datetime | None = None
) -> tuple[list[Taken], list[str]]:
    """Extend the lease of the deliveries still held by `token` to `until` and load what sending
    needs. Deliveries to `skip_webhooks` are not taken: their lease is cut to `hold_until` (never
    lengthened), or left as it is without one. An ordered delivery that waits behind another of its
    key is not taken either: its lease is dropped and its id returned second (taken, behind)."""
    return implementation().take(ids=ids, token=token, until=until, skip_webhooks=skip_webhooks, hold_until=hold_until)


def record(outcomes: list[AttemptRecord], *, now: datetime) -> None:
    """Store the attempts and move each delivery still held by its outcome's token on; an attempt
    is stored for every delivery that still exists."""
    if outcomes:
        implementation().record(outcomes, now=now)


def webhooks_succeeded(*, last_success: dict[str, datetime], now: datetime) -> list[str]:
    """Webhooks whose latest attempts all succeeded: streak reset, circuit closed, warnings
    cleared, last success at. Returns those whose owner had been told they were in trouble (a
    webhook.failing or an open circuit), for a webhook.recovered."""
    return implementation().webhooks_succeeded(last_success=last_success, now=now)
