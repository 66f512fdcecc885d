"""The engine's set-based statements: claim, take, record and hand back deliveries a batch at a time.

On PostgreSQL each is one statement (UPDATE … RETURNING, SKIP LOCKED, arrays unnested on the
server); on SQLite, the embedded mode of `make run`, the same effect through the ORM, row by row.
Callers pass plain values and get plain values back; the decisions (which outcome, which retry
time) are made by the services.
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Callable

import psycopg
from django.db import connection, transaction
from django.db.models import Q

from core.crypto import decrypt
from core.ids import new_delivery_id
from deliveries import jsjson
from deliveries.formats import Envelope
from deliveries.models import Attempt, Delivery, Event
from subscriptions.models import Webhook

logger = logging.getLogger(__name__)

PENDING = Delivery.Status.PENDING


def on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _execute(sql: str, params: list) -> list[tuple]:
    """Run one statement with server-side binding, so arrays travel as arrays, not as SQL text."""
    connection.close_if_health_check_failed()  # CONN_HEALTH_CHECKS, as Django's own cursors do
    connection.ensure_connection()
    # Django's wrapper turns psycopg errors into django.db ones and marks the connection for a check.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


# --- create (publish) -------------------------------------------------------------------------
@dataclass
class Candidate:
    """What choosing a webhook for an event needs of it."""

    id: str
    events: list[str]
    format: str
    circuit_opened_at: datetime | None
    paused: bool

    @property
    def held(self) -> bool:
        """Its deliveries are stored but not handed out: paused, or its circuit is open."""
        return self.paused or self.circuit_opened_at is not None


_CANDIDATE_COLUMNS = "id, events::text, format, circuit_opened_at, NOT enabled"
# Webhooks that get deliveries of new events: enabled ones and paused ones (whose deliveries wait);
# not those the service disabled.
_GETS_EVENTS = "(enabled OR disabled_reason = '')"


def _candidates(rows: list[tuple]) -> list[Candidate]:
    return [Candidate(id, json.loads(events), format, opened, paused) for id, events, format, opened, paused in rows]


def event_create(*, site_id: str, event_type: str, data: dict, data_json: str) -> tuple[Event, list[Candidate]]:
    """Store the event and read the site's enabled webhooks, in one statement on PostgreSQL (the
    ORM's INSERT and SELECT cost a publish more CPU than the rest of it). `data_json` is `data`
    as the publish already rendered it (jsjson.dumps), stored as it is."""
    event = Event(site_id=site_id, type=event_type, data=data)
    if not on_postgresql():
        event.save(force_insert=True)
        return event, webhook_candidates(site_id=site_id)
    sql, fields = _event_plan()
    values = [data_json if f.attname == "data" else f.get_db_prep_save(getattr(event, f.attname), connection) for f in fields]
    rows = _execute(sql, values + [site_id])
    event._state.adding, event._state.db = False, connection.alias
    return event, _candidates(rows)


@lru_cache(maxsize=1)
def _event_plan() -> tuple[str, list]:
    """`event_create`'s statement (built once per process) and the event's fields in parameter order."""
    fields = list(Event._meta.concrete_fields)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    values = ", ".join(f"%s::{f.db_type(connection)}" for f in fields)
    sql = (
        f"WITH event AS (INSERT INTO {Event._meta.db_table} ({columns}) VALUES ({values})) "
        f"SELECT {_CANDIDATE_COLUMNS} FROM {Webhook._meta.db_table} WHERE site_id = %s AND {_GETS_EVENTS}"
    )
    return sql, fields


def webhook_candidates(*, site_id: str | None = None, webhook_id: str | None = None) -> list[Candidate]:
    """The site's webhooks that get new events (enabled or paused), or the one webhook
    `webhook_id` whatever its state."""
    if webhook_id:
        found = Webhook.objects.filter(pk=webhook_id)
    else:
        found = Webhook.objects.filter(Q(enabled=True) | Q(disabled_reason=""), site_id=site_id)
    rows = found.values_list("id", "events", "format", "circuit_opened_at", "enabled")
    return [Candidate(id, events, format, opened, not enabled) for id, events, format, opened, enabled in rows]


def deliveries_create(
    *, event_id: str, webhook_ids: list[str], now: datetime, until: datetime | None, token: str | None
) -> list[tuple[str, str]]:
    """One delivery per webhook, due `now`, under the dispatch lease `token` until `until`; the
    (delivery id, webhook id) of each stored.

    On PostgreSQL one `INSERT … SELECT … unnest(…)` whose columns come from the model, every field
    the caller does not set taking its default as `bulk_create` would.
    """
    if not webhook_ids:
        return []
    given = {"event_id": event_id, "next_attempt_at": now, "leased_until": until, "lease_token": token}
    if not on_postgresql():
        created = Delivery.objects.bulk_create(Delivery(webhook_id=w, **given) for w in webhook_ids)
        return [(d.id, d.webhook_id) for d in created]
    ids = [new_delivery_id() for _ in webhook_ids]
    sql, constant = _insert_plan()
    params = []
    for f in constant:
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            value = now
        else:
            value = given[f.attname] if f.attname in given else f.get_default()
        params.append(f.get_db_prep_save(value, connection))
    inserted = {row[0] for row in _execute(sql, params + [ids, list(webhook_ids)])}
    # A webhook deleted meanwhile gets none (see _insert_plan).
    return [(i, w) for i, w in zip(ids, webhook_ids) if i in inserted]


@lru_cache(maxsize=1)
def _insert_plan() -> tuple[str, list]:
    """The INSERT of `deliveries_create` (built once per process) and the fields whose values are
    the same for every row of one call, in the order of its parameters."""
    per_row = {"id", "webhook_id"}
    columns, values, constant = [], [], []
    for f in Delivery._meta.concrete_fields:
        columns.append(connection.ops.quote_name(f.column))
        if f.attname in per_row:
            values.append(f"r.{f.attname}")
            continue
        values.append(f"%s::{f.db_type(connection)}")
        constant.append(f)
    id_type, webhook_type = (Delivery._meta.get_field(n).db_type(connection) for n in ("id", "webhook"))
    # Only for webhooks that still exist, holding them (KEY SHARE) until commit: a webhook_delete
    # that locked its webhook first wins, and this publish then skips it instead of failing the
    # foreign key at commit; one that comes later waits for this publish and deletes its deliveries.
    webhooks = Webhook._meta.db_table
    sql = (
        f"INSERT INTO {Delivery._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM unnest(%s::{id_type}[], %s::{webhook_type}[]) AS r(id, webhook_id) "
        f"JOIN {webhooks} w ON w.id = r.webhook_id FOR KEY SHARE OF w RETURNING {Delivery._meta.pk.column}"
    )
    return sql, constant


# --- claim (the sweep) ------------------------------------------------------------------------
CLAIM_SQL = """
UPDATE deliveries_delivery SET leased_until = %s, lease_token = %s
WHERE id IN (
    SELECT id FROM deliveries_delivery
    WHERE status = 'pending' AND next_attempt_at <= %s AND (leased_until IS NULL OR leased_until < %s)
      -- a paused webhook's deliveries wait; an open circuit's are held, its probes claimed on their own
      AND webhook_id NOT IN (
          SELECT id FROM subscriptions_webhook
          WHERE circuit_opened_at IS NOT NULL OR (NOT enabled AND disabled_reason = '')
      )
    ORDER BY next_attempt_at
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING id
"""


def due_unleased(*, now: datetime):
    """Pending deliveries whose time has come and whose lease (if any) ran out."""
    return Delivery.objects.filter(status=PENDING, next_attempt_at__lte=now).filter(
        Q(leased_until__isnull=True) | Q(leased_until__lt=now)
    )


def due(*, now: datetime):
    """What the sweep may claim: due and unleased, except a paused webhook's (they wait) and an
    open circuit's (it gets probes)."""
    return due_unleased(now=now).exclude(webhook__circuit_opened_at__isnull=False).exclude(Webhook.paused_q("webhook__"))


def claim_due(*, now: datetime, limit: int, until: datetime, token: str) -> list[str]:
    """Lease up to `limit` due deliveries whose lease ran out; the walk is along the due index."""
    if on_postgresql():
        return [row[0] for row in _execute(CLAIM_SQL, [until, token, now, now, limit])]
    with transaction.atomic():
        ids = list(
            due(now=now)
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            Delivery.objects.filter(id__in=ids).update(leased_until=until, lease_token=token)
    return ids


# --- take (a worker swaps the dispatch lease for a send lease) --------------------------------
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


# The event's data is returned once per event, not once per delivery of it, as the text stored at
# publish. The ids are joined from `unnest`, each looked up by primary key, and nothing else in the
# WHERE may offer the planner another way in. Only a pending delivery ever carries a lease token
# (recording an outcome clears it), so the token alone says the delivery is still ours; the status
# is checked after the UPDATE. In its WHERE, `status = 'pending'` let the planner read every
# pending delivery through `delivery_due_idx` whenever the statistics said few were pending (a new
# or freshly emptied table, a burst after a quiet spell) and join them with the ids: a take of 30
# ids cost 20-700 ms in the benchmark.
TAKE_SQL = """
WITH taken AS (
    UPDATE deliveries_delivery d
    SET leased_until = CASE WHEN d.webhook_id = ANY(%(skip)s) THEN LEAST(d.leased_until, %(hold)s) ELSE %(until)s END
    FROM unnest(%(ids)s::text[]) AS k(id)
    WHERE d.id = k.id AND d.lease_token = %(token)s
    RETURNING d.id, d.event_id, d.webhook_id, d.attempt_count, d.schedule_position, d.status,
              d.webhook_id = ANY(%(skip)s) AS skipped
)
SELECT t.id, t.attempt_count, t.schedule_position,
       e.id, e.type, e.site_id, e.created_at,
       CASE WHEN row_number() OVER (PARTITION BY e.id) = 1 THEN e.data::text END,
       w.id, w.url, w.format, w.enabled, w.disabled_reason, w.secret, w.previous_secret, w.previous_secret_expires_at
FROM taken t
JOIN deliveries_event e ON e.id = t.event_id
JOIN subscriptions_webhook w ON w.id = t.webhook_id
WHERE t.status = 'pending' AND NOT t.skipped
"""


@lru_cache(maxsize=4096)
def _plain(ciphertext: str) -> str:
    """Secrets are stored encrypted; a worker decrypts each distinct ciphertext once."""
    return decrypt(ciphertext) if ciphertext else ""


@lru_cache(maxsize=1024)
def _webhook(id, url, format, enabled, disabled_reason, secret, previous_secret, previous_secret_expires_at) -> Webhook:
    """What sending needs of a webhook, built once per version of its row (read-only)."""
    return Webhook(
        id=id, url=url, format=format, enabled=enabled, disabled_reason=disabled_reason, secret=_plain(secret),
        previous_secret=_plain(previous_secret), previous_secret_expires_at=previous_secret_expires_at,
    )


def _ready(build: Callable[[], Webhook]) -> tuple[Webhook | None, str]:
    """The webhook, or why it cannot sign: one webhook's bad row must not stop the batch."""
    try:
        return build(), ""
    except Exception as exc:
        logger.exception("webhook row cannot be made ready to send")
        reason = str(exc) if isinstance(exc, ValueError) else type(exc).__name__  # crypto's message names no secret
        return None, f"the webhook cannot sign: {reason}"


def take(
    *, ids: list[str], token: str, until: datetime, skip_webhooks: list[str] = (), hold_until: datetime | None = None
) -> list[Taken]:
    """Extend the lease of the deliveries still held by `token` to `until` and load what sending
    needs. Deliveries to `skip_webhooks` are not taken: their lease is cut to `hold_until` (never
    lengthened), or left as it is without one."""
    if not on_postgresql():
        return _take_orm(ids=ids, token=token, until=until, skip_webhooks=skip_webhooks, hold_until=hold_until)
    params = {"until": until, "hold": hold_until, "ids": list(ids), "token": token, "skip": list(skip_webhooks)}
    rows = _execute(TAKE_SQL, params)
    events: dict[str, Envelope] = {}
    webhooks: dict[str, tuple[Webhook | None, str]] = {}
    for row in rows:
        event_id, data = row[3], row[7]
        if data is not None:
            events[event_id] = Envelope(event_id, row[4], row[5], row[6], data)
        if row[8] not in webhooks:
            webhooks[row[8]] = _ready(lambda: _webhook(*row[8:16]))
    return [Taken(row[0], row[1], row[2], events[row[3]], row[8], row[10], *webhooks[row[8]]) for row in rows]


def _take_orm(*, ids, token, until, skip_webhooks, hold_until) -> list[Taken]:
    held = Delivery.objects.filter(id__in=ids, lease_token=token, status=PENDING)
    if hold_until is not None:
        held.filter(webhook_id__in=skip_webhooks, leased_until__gt=hold_until).update(leased_until=hold_until)
    owned = held.exclude(webhook_id__in=skip_webhooks)
    if not owned.update(leased_until=until):
        return []
    taken = []
    for d in owned.select_related("event"):
        e = d.event
        envelope = Envelope(e.id, e.type, e.site_id, e.created_at, jsjson.dumps(e.data).decode("utf-8"))
        webhook, problem = _ready(lambda: Webhook.objects.get(pk=d.webhook_id))
        # Only a webhook that cannot be read whole costs a second query, for its format.
        webhook_format = webhook.format if webhook else Webhook.objects.values_list("format", flat=True).get(pk=d.webhook_id)
        taken.append(Taken(d.id, d.attempt_count, d.schedule_position, envelope, d.webhook_id, webhook_format, webhook, problem))
    return taken


# --- record -----------------------------------------------------------------------------------
@dataclass
class Outcome:
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
RECORD_SQL = """
WITH r AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb)
        AS r(id text, token text, number int, at timestamptz, status_code int, request_headers jsonb,
             response_headers jsonb, response_body text, duration_ms int, error text, succeeded bool, status text,
             schedule_position int, next_attempt_at timestamptz)
), moved AS (
    UPDATE deliveries_delivery d
    SET status = r.status, attempt_count = r.number, schedule_position = r.schedule_position,
        next_attempt_at = r.next_attempt_at, last_attempt_at = %s, last_status_code = r.status_code,
        last_error = r.error, leased_until = NULL, lease_token = NULL, updated_at = %s
    FROM r
    WHERE d.id = r.id AND d.lease_token = r.token
)
INSERT INTO deliveries_attempt (delivery_id, number, at, status_code, request_headers, response_headers,
                                response_body, duration_ms, error, succeeded)
SELECT r.id, r.number, r.at, r.status_code, r.request_headers, r.response_headers,
       r.response_body, r.duration_ms, r.error, r.succeeded
FROM r
WHERE EXISTS (SELECT 1 FROM deliveries_delivery d WHERE d.id = r.id)
"""


def _text(value: str) -> str:
    """What PostgreSQL text can hold: no NUL, and no lone surrogate, which a receiver's header of
    bytes that are not UTF-8 becomes (aiohttp decodes header values with surrogateescape)."""
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value.replace("\x00", "\ufffd")


def _moment(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def record(outcomes: list[Outcome], *, now: datetime) -> None:
    if not outcomes:
        return
    if on_postgresql():
        batch = [
            {
                "id": o.delivery_id, "token": o.token, "number": o.number, "at": _moment(o.at),
                "status_code": o.status_code, "request_headers": o.request_headers,
                "response_headers": {_text(k): _text(v) for k, v in o.response_headers.items()},
                "response_body": _text(o.response_body), "duration_ms": o.duration_ms, "error": _text(o.error),
                "succeeded": o.succeeded, "status": o.status, "schedule_position": o.schedule_position,
                "next_attempt_at": _moment(o.next_attempt_at),
            }
            for o in outcomes
        ]
        with transaction.atomic():
            _execute(RECORD_SQL, [json.dumps(batch), now, now])
        return
    with transaction.atomic():
        existing = set(Delivery.objects.filter(id__in=[o.delivery_id for o in outcomes]).values_list("id", flat=True))
        for o in outcomes:
            Delivery.objects.filter(pk=o.delivery_id, lease_token=o.token).update(
                status=o.status, attempt_count=o.number, schedule_position=o.schedule_position,
                next_attempt_at=o.next_attempt_at, last_attempt_at=now, last_status_code=o.status_code,
                last_error=o.error, leased_until=None, lease_token=None, updated_at=now,
            )
        Attempt.objects.bulk_create(
            Attempt(
                delivery_id=o.delivery_id, number=o.number, at=o.at, status_code=o.status_code,
                request_headers=o.request_headers, response_headers=o.response_headers,
                response_body=o.response_body, duration_ms=o.duration_ms, error=o.error, succeeded=o.succeeded,
            )
            for o in outcomes
            if o.delivery_id in existing
        )


# --- endpoint health -------------------------------------------------------------------------
# Sorted ids: concurrent recorders lock the webhooks they share in the same order.
SUCCEEDED_SQL = """
UPDATE subscriptions_webhook w
SET consecutive_failures = 0, failing_since = NULL, circuit_opened_at = NULL, circuit_probe_at = NULL,
    last_success_at = r.at, updated_at = %s
FROM unnest(%s::text[], %s::timestamptz[]) AS r(id, at)
WHERE w.id = r.id
"""


def webhooks_succeeded(*, last_success: dict[str, datetime], now: datetime) -> None:
    """Webhooks whose latest attempts all succeeded: streak reset, circuit closed, last success at."""
    ids = sorted(last_success)
    if on_postgresql():
        _execute(SUCCEEDED_SQL, [now, ids, [last_success[i] for i in ids]])
        return
    for webhook_id in ids:
        Webhook.objects.filter(pk=webhook_id).update(
            consecutive_failures=0, failing_since=None, circuit_opened_at=None, circuit_probe_at=None,
            last_success_at=last_success[webhook_id], updated_at=now,
        )


# --- hand back --------------------------------------------------------------------------------
def release(*, ids: list[str], token: str, **fields) -> int:
    """Set `fields` on the deliveries still held by `token` and drop the lease."""
    if not ids:
        return 0
    return Delivery.objects.filter(id__in=ids, lease_token=token).update(leased_until=None, lease_token=None, **fields)
