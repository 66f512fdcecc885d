"""The engine's statements on PostgreSQL: each one statement (UPDATE … RETURNING, SKIP LOCKED,
arrays unnested on the server), bound server-side through psycopg."""

import json
import time
from datetime import datetime
from functools import lru_cache

import psycopg
from django.db import connection, transaction

from core.ids import new_delivery_id
from deliveries.bulk.common import AttemptRecord, Candidate, Taken, _ready, _webhook
from deliveries.formats.types import Envelope
from deliveries.models import Delivery, Event
from subscriptions.models import Webhook


def _execute(sql: str, params: list) -> list[tuple]:
    """Run one statement with server-side binding, so arrays travel as arrays, not as SQL text."""
    connection.close_if_health_check_failed()  # CONN_HEALTH_CHECKS, as Django's own cursors do
    connection.ensure_connection()
    # Django's wrapper turns psycopg errors into django.db ones and marks the connection for a check.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


# --- create (publish) -------------------------------------------------------------------------
_CANDIDATE_COLUMNS = "id, events::text, format, circuit_opened_at, NOT enabled, ordering, filter::text"
# Webhooks that get deliveries of new events: enabled ones and paused ones (whose deliveries wait);
# not those the service disabled.
_GETS_EVENTS = "(enabled OR disabled_reason = '')"


def _candidates(rows: list[tuple]) -> list[Candidate]:
    # The filter stays JSON text: most webhooks have none, and one that has is compiled once per text.
    return [
        Candidate(id, _subscription(events), format, opened, paused, ordering, cond)
        for id, events, format, opened, paused, ordering, cond in rows
    ]


@lru_cache(maxsize=4096)
def _subscription(events: str) -> list[str]:
    """A webhook's `events` as stored, read once per process and text (each publish reads every
    candidate's); read-only."""
    return json.loads(events)


def event_create(
    *, site_id: str, event_type: str, data: dict, data_json: str, ordering_key: str | None = None
) -> tuple[Event, list[Candidate]]:
    event = Event(site_id=site_id, type=event_type, data=data, ordering_key=ordering_key)
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


def events_create(*, events: list[Event], data_json: list[str]) -> set[str]:
    """Many events in one INSERT (their fields as arrays, unnested on the server); an event whose
    idempotency key the site used meanwhile is skipped, not an error. The ids of those stored."""
    sql, fields = _events_plan()
    arrays = [
        data_json if f.attname == "data" else [f.get_db_prep_save(getattr(e, f.attname), connection) for e in events]
        for f in fields
    ]
    return {row[0] for row in _execute(sql, arrays)}


@lru_cache(maxsize=1)
def _events_plan() -> tuple[str, list]:
    """`events_create`'s statement (built once per process) and the event's fields in parameter order."""
    fields = list(Event._meta.concrete_fields)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in fields)
    sql = (
        f"INSERT INTO {Event._meta.db_table} ({columns}) SELECT * FROM unnest({arrays}) "
        # The partial unique index of (site, idempotency key): a concurrent publish with the same key won.
        f"ON CONFLICT (site_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING "
        f"RETURNING {Event._meta.pk.column}"
    )
    return sql, fields


def candidates_read(*, site_id: str) -> list[Candidate]:
    return _candidates(
        _execute(f"SELECT {_CANDIDATE_COLUMNS} FROM {Webhook._meta.db_table} WHERE site_id = %s AND {_GETS_EVENTS}", [site_id])
    )


def deliveries_create(
    *,
    given: dict,
    event_ids: list[str],
    webhook_ids: list[str],
    keys: list[str | None],
    now: datetime,
    behind: list[str] | None = None,
) -> list[tuple[str, str, str]]:
    ids = [new_delivery_id() for _ in webhook_ids]
    sql, constant = _insert_plan()
    params = []
    for kind, f, prepared in constant:
        if kind == "now":
            value = now
        elif kind == "given":
            value = given[f.attname]
        elif kind == "default":
            params.append(prepared)
            continue
        else:  # a default computed at each call (timezone.now)
            value = f.get_default()
        params.append(f.get_db_prep_save(value, connection))
    rows = _execute(sql, params + [ids, list(event_ids), list(webhook_ids), list(keys), given["lease_token"]])
    inserted = {row[0] for row in rows}
    if behind is not None:
        behind.extend(row[0] for row in rows if row[1])
    # A webhook deleted meanwhile gets none (see _insert_plan).
    return [(i, e, w) for i, e, w in zip(ids, event_ids, webhook_ids, strict=True) if i in inserted]


_GIVEN = ("next_attempt_at", "leased_until", "lease_token")


@lru_cache(maxsize=1)
def _insert_plan() -> tuple[str, list]:
    """The INSERT of `deliveries_create` (built once per process) and, in the order of its
    parameters, how to get each value that is the same for every row of one call: (kind, field,
    value), kind "now" (auto_now), "given" (`_GIVEN`, from the call), "call" (a callable default)
    or "default" (a constant default, prepared here once)."""
    per_row = ("id", "event_id", "webhook_id", "ordering_key")
    columns, values, constant = [], [], []
    for f in Delivery._meta.concrete_fields:
        columns.append(connection.ops.quote_name(f.column))
        if f.attname in per_row:
            values.append(f"r.{f.attname}")
            continue
        if f.attname == "sequence":  # publish order, drawn under the key's lock (keys_lock)
            values.append(f"nextval('{SEQUENCE}')")
            continue
        # A delivery behind its key's head: no lease and no due time (not in the sweep's due index:
        # a long queue behind a failing head costs the sweep nothing); claim_next hands it out.
        if f.attname in _GIVEN:
            values.append(f"CASE WHEN {WAITS} THEN NULL ELSE %s::{f.db_type(connection)} END")
        else:
            values.append(f"%s::{f.db_type(connection)}")
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            constant.append(("now", f, None))
        elif f.attname in _GIVEN:
            constant.append(("given", f, None))
        elif callable(f.default):
            constant.append(("call", f, None))
        else:
            constant.append(("default", f, f.get_db_prep_save(f.get_default(), connection)))
    types = ", ".join(f"%s::{Delivery._meta.get_field(n.removesuffix('_id')).db_type(connection)}[]" for n in per_row)
    # Only for webhooks that still exist, holding them (KEY SHARE) until commit: a webhook_delete
    # that locked its webhook first wins, and this publish then skips it instead of failing the
    # foreign key at commit; one that comes later waits for this publish and deletes its deliveries.
    webhooks = Webhook._meta.db_table
    sql = (
        f"INSERT INTO {Delivery._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM unnest({types}) AS r({', '.join(per_row)}) "
        f"JOIN {webhooks} w ON w.id = r.webhook_id FOR KEY SHARE OF w "
        f"RETURNING {Delivery._meta.pk.column}, ordering_key IS NOT NULL AND lease_token IS NULL AND %s::text IS NOT NULL"
    )
    return sql, constant


# --- ordered delivery ---------------------------------------------------------------------------
# The sequence that numbers deliveries in publish order (created by the migration that added it).
SEQUENCE = "deliveries_delivery_sequence_seq"

# At publish (under the key's lock): the new delivery `r` has a pending delivery of its key before
# it, so it gets no dispatch lease and no message; it is enqueued when the one before it ends.
WAITS = """(r.ordering_key IS NOT NULL AND EXISTS (
    SELECT 1 FROM deliveries_delivery p
    WHERE p.webhook_id = r.webhook_id AND p.ordering_key = r.ordering_key AND p.ordering_key IS NOT NULL
      AND p.status = 'pending'))"""

# The head check (docs/ordering.md): `d` is sendable unless it is ordered (has a key) and a pending
# delivery of the same webhook and key comes before it. Along delivery_key_queue_idx; an unordered
# delivery never reaches the subquery.
HEAD = """(d.ordering_key IS NULL OR NOT EXISTS (
    SELECT 1 FROM deliveries_delivery p
    WHERE p.webhook_id = d.webhook_id AND p.ordering_key = d.ordering_key AND p.ordering_key IS NOT NULL
      AND p.status = 'pending' AND (p.sequence, p.id) < (d.sequence, d.id)))"""

# A paused webhook's deliveries wait; an open circuit's are held, its probes claimed on their own.
HELD_WEBHOOKS = """
    SELECT id FROM subscriptions_webhook
    WHERE circuit_opened_at IS NOT NULL OR (NOT enabled AND disabled_reason = '')"""


def keys_lock(keys: list[str]) -> None:
    """Hold the publish lock of each (webhook, key) until the transaction ends, in one order (no
    deadlock between two publishes of the same keys): a key's sequence numbers are then drawn in
    the order its publishes commit, so no delivery can appear before one already being sent."""
    _execute(
        "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) FROM (SELECT k FROM unnest(%s::text[]) k ORDER BY k) s",
        [sorted(set(keys))],
    )


def sequences(count: int) -> list[int]:
    """`count` new places at the end of every key's order (a retried delivery goes behind those waiting)."""
    return [row[0] for row in _execute(f"SELECT nextval('{SEQUENCE}') FROM generate_series(1, %s)", [count])]


# The pending head of the key `f` (webhook_id, ordering_key): the lowest sequence along
# delivery_key_queue_idx, which stops at the key's first live entry, then the lowest id of that
# sequence (several only among rows from before ordering existed, all 0). Ordering by
# (sequence, id) at once read the key's whole queue and sorted it: a long queue made each hand-out
# cost its length.
KEY_HEAD = """(
    SELECT n.id FROM deliveries_delivery n
    WHERE n.webhook_id = f.webhook_id AND n.ordering_key = f.ordering_key AND n.ordering_key IS NOT NULL
      AND n.status = 'pending'
      AND n.sequence = (
          SELECT m.sequence FROM deliveries_delivery m
          WHERE m.webhook_id = f.webhook_id AND m.ordering_key = f.ordering_key AND m.ordering_key IS NOT NULL
            AND m.status = 'pending'
          ORDER BY m.sequence LIMIT 1)
    ORDER BY n.id LIMIT 1
)"""

# The heads are found first (MATERIALIZED), then the deliveries looked up by their ids. Left to
# the planner, a table whose statistics were taken when it was small (a burst on a hot key) was
# read the other way round: every pending delivery, and for each the head of its key, 1 s a
# hand-out behind 1,800 waiting. Now the queue is read once at most (tests/deliveries/test_bulk.py).
NEXT_SQL = f"""
WITH f AS MATERIALIZED (
    SELECT DISTINCT webhook_id, ordering_key FROM deliveries_delivery
    WHERE id = ANY(%(ids)s::text[]) AND ordering_key IS NOT NULL
), h AS MATERIALIZED (
    SELECT head.id FROM f CROSS JOIN LATERAL {KEY_HEAD} head
)
UPDATE deliveries_delivery
SET leased_until = %(until)s, lease_token = %(token)s, next_attempt_at = COALESCE(next_attempt_at, %(now)s)
WHERE id IN (
    SELECT d.id FROM deliveries_delivery d WHERE d.id = ANY(ARRAY(SELECT id FROM h))
    -- a delivery that waited behind its head has no due time: it is due now
      AND d.status = 'pending' AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= %(now)s)
      AND (d.leased_until IS NULL OR d.leased_until < %(now)s)
      AND d.webhook_id NOT IN ({HELD_WEBHOOKS})
    FOR NO KEY UPDATE SKIP LOCKED
)
RETURNING id
"""


def claim_next(*, ids: list[str], now: datetime, until: datetime, token: str) -> list[str]:
    return [row[0] for row in _execute(NEXT_SQL, {"ids": list(ids), "now": now, "until": until, "token": token})]


# Keys whose head waits with no due time and no lease: its predecessor ended but the hand-out that
# follows (claim_next) was lost (a worker killed in between, a publish that committed just as the
# head ended, a webhook paused meanwhile). A loose scan of delivery_key_queue_idx: one descent per
# key with pending deliveries, however long each key's queue is.
STALLED_SQL = f"""
WITH RECURSIVE k AS (
    (SELECT webhook_id, ordering_key FROM deliveries_delivery
     WHERE status = 'pending' AND ordering_key IS NOT NULL
     ORDER BY webhook_id, ordering_key LIMIT 1)
    UNION ALL
    SELECT n.webhook_id, n.ordering_key FROM k CROSS JOIN LATERAL (
        SELECT webhook_id, ordering_key FROM deliveries_delivery
        WHERE status = 'pending' AND ordering_key IS NOT NULL
          AND (webhook_id, ordering_key) > (k.webhook_id, k.ordering_key)
        ORDER BY webhook_id, ordering_key LIMIT 1
    ) n
), h AS MATERIALIZED (
    SELECT head.id FROM k AS f CROSS JOIN LATERAL {KEY_HEAD} head
)
UPDATE deliveries_delivery
SET leased_until = %(until)s, lease_token = %(token)s, next_attempt_at = %(now)s
WHERE id IN (
    SELECT d.id FROM deliveries_delivery d WHERE d.id = ANY(ARRAY(SELECT id FROM h))
      AND d.status = 'pending' AND d.next_attempt_at IS NULL AND (d.leased_until IS NULL OR d.leased_until < %(now)s)
      AND d.webhook_id NOT IN ({HELD_WEBHOOKS})
    LIMIT %(limit)s
    FOR NO KEY UPDATE SKIP LOCKED
)
RETURNING id
"""


def claim_stalled(*, now: datetime, limit: int, until: datetime, token: str) -> list[str]:
    params = {"now": now, "until": until, "token": token, "limit": limit}
    return [row[0] for row in _execute(STALLED_SQL, params)]


# --- claim (the sweep) ------------------------------------------------------------------------
CLAIM_SQL = f"""
UPDATE deliveries_delivery SET leased_until = %s, lease_token = %s
WHERE id IN (
    SELECT d.id FROM deliveries_delivery d
    WHERE d.status = 'pending' AND d.next_attempt_at <= %s AND (d.leased_until IS NULL OR d.leased_until < %s)
      AND d.webhook_id NOT IN ({HELD_WEBHOOKS})
      AND {HEAD}
    ORDER BY d.next_attempt_at
    LIMIT %s
    FOR NO KEY UPDATE SKIP LOCKED
)
RETURNING id
"""


def claim_due(*, now: datetime, limit: int, until: datetime, token: str) -> list[str]:
    return [row[0] for row in _execute(CLAIM_SQL, [until, token, now, now, limit])]


# An ordered delivery that is not the head of its key is not taken: its lease is dropped (its
# `behind` row comes back with no event), and it is claimed when the one before it ends.
TAKE_SQL = f"""
WITH k AS (
    -- In id order, and past rows another transaction holds (a webhook's delete): a take never
    -- waits on a delete that may be waiting on it. One skipped keeps its dispatch lease, which
    -- runs out, and the sweep hands it out again if it still exists.
    SELECT d.id FROM deliveries_delivery d
    WHERE d.id = ANY(%(ids)s::text[]) AND d.lease_token = %(token)s
    ORDER BY d.id
    FOR NO KEY UPDATE SKIP LOCKED
), taken AS (
    UPDATE deliveries_delivery d
    SET leased_until = CASE WHEN NOT {HEAD} THEN NULL
                            WHEN d.webhook_id = ANY(%(skip)s) THEN LEAST(d.leased_until, %(hold)s)
                            ELSE %(until)s END,
        lease_token = CASE WHEN {HEAD} THEN d.lease_token END,
        next_attempt_at = CASE WHEN {HEAD} THEN d.next_attempt_at END
    FROM k
    WHERE d.id = k.id AND d.lease_token = %(token)s
    RETURNING d.id, d.event_id, d.webhook_id, d.attempt_count, d.schedule_position, d.status, d.ordering_key,
              d.webhook_id = ANY(%(skip)s) AS skipped, d.lease_token IS NULL AS behind
)
SELECT t.id, t.attempt_count, t.schedule_position,
       e.id, e.type, e.site_id, e.created_at,
       CASE WHEN row_number() OVER (PARTITION BY e.id) = 1 THEN e.data::text END,
       w.id, w.url, w.format, w.enabled, w.disabled_reason, w.secret, w.previous_secret, w.previous_secret_expires_at,
       w.exchange, w.routing_key, w.broker_password, t.ordering_key, t.behind,
       w.headers::text, w.auth::text, w.auth_secret, w.rate_limit::text, w.tls_client_cert, w.tls_client_key, w.tls_ca_cert
FROM taken t
JOIN deliveries_event e ON e.id = t.event_id
JOIN subscriptions_webhook w ON w.id = t.webhook_id
WHERE t.status = 'pending' AND (t.behind OR NOT t.skipped)
"""


# Deliveries still held by the take's token that its SKIP LOCKED passed over: another transaction
# had the row locked at that instant. Most such locks last a statement (a claim that looked at the
# row keeps it locked to the statement's end even when it then finds the row leased); a delete's
# lasts its transaction.
HELD_SQL = """
SELECT id FROM deliveries_delivery
WHERE id = ANY(%(ids)s::text[]) AND lease_token = %(token)s AND status = 'pending' AND webhook_id <> ALL(%(skip)s)
"""

# Pauses (seconds) before a take tries again the deliveries a lock made it pass over. Without them
# such a delivery waited for its dispatch lease to run out (60 s): a hot ordering key, whose next
# delivery is claimed while other publishes look at it, lost that minute at every such collision.
TAKE_PAUSES = (0.005, 0.02, 0.1)


def take(*, ids, token, until, skip_webhooks, hold_until) -> tuple[list[Taken], list[str]]:
    params = {"until": until, "hold": hold_until, "ids": list(ids), "token": token, "skip": list(skip_webhooks)}
    rows = _execute(TAKE_SQL, params)
    for pause in TAKE_PAUSES:
        answered = {row[0] for row in rows}
        missing = [i for i in params["ids"] if i not in answered]
        if not missing:
            break
        held = [row[0] for row in _execute(HELD_SQL, {"ids": missing, "token": token, "skip": params["skip"]})]
        if not held:
            break
        time.sleep(pause)
        rows += _execute(TAKE_SQL, {**params, "ids": held})
    events: dict[str, Envelope] = {}
    webhooks: dict[str, tuple[Webhook | None, str]] = {}
    taken, behind = [], []
    for row in rows:
        event_id, data = row[3], row[7]
        if data is not None:
            events[event_id] = Envelope(event_id, row[4], row[5], row[6], data)
    for row in rows:
        if row[20]:
            behind.append(row[0])
            continue
        if row[8] not in webhooks:
            webhooks[row[8]] = _ready(lambda row=row: _webhook(*row[8:19], *row[21:28]))
        taken.append(Taken(row[0], row[1], row[2], events[row[3]], row[8], row[10], *webhooks[row[8]], row[19]))
    return taken, behind


RECORD_SQL = """
WITH r AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb)
        AS r(id text, token text, number int, at timestamptz, status_code int, request_headers jsonb,
             response_headers jsonb, response_body text, duration_ms int, error text, succeeded bool, status text,
             schedule_position int, next_attempt_at timestamptz)
), present AS (
    -- The deliveries that still exist, held (KEY SHARE) until commit so none can be deleted under
    -- the attempts written for it. SKIP LOCKED: one a delete holds is being deleted (or moved by
    -- an operator); waiting for it could deadlock with the delete and roll the whole batch back,
    -- so its attempt is not logged. docs/limits.md. The claims lock rows FOR NO KEY UPDATE, which
    -- KEY SHARE does not wait for: a claim that only looked at a delivery in flight (it keeps the
    -- row locked to its end even when it finds it leased) never makes its outcome go unrecorded.
    SELECT d.id, d.lease_token FROM deliveries_delivery d
    WHERE d.id IN (SELECT r.id FROM r)
    ORDER BY d.id
    FOR KEY SHARE SKIP LOCKED
), moved AS (
    UPDATE deliveries_delivery d
    SET status = r.status, attempt_count = r.number, schedule_position = r.schedule_position,
        next_attempt_at = r.next_attempt_at, last_attempt_at = %s, last_status_code = r.status_code,
        last_error = r.error, leased_until = NULL, lease_token = NULL, updated_at = %s
    -- The batch is matched to the rows it holds first, by hash, then each row found by its key.
    -- Through `d` first, the planner expected one row out of r and d and scanned the whole of
    -- `present` for each: a record took time in the square of its batch.
    FROM r JOIN present p ON p.id = r.id AND p.lease_token = r.token
    WHERE d.id = p.id AND d.lease_token = r.token
)
INSERT INTO deliveries_attempt (delivery_id, number, at, status_code, request_headers, response_headers,
                                response_body, duration_ms, error, succeeded)
SELECT r.id, r.number, r.at, r.status_code, r.request_headers, r.response_headers,
       r.response_body, r.duration_ms, r.error, r.succeeded
FROM r JOIN present p ON p.id = r.id
"""


def _text(value: str) -> str:
    """What PostgreSQL text can hold: no NUL, and no lone surrogate, which a receiver's header of
    bytes that are not UTF-8 becomes (aiohttp decodes header values with surrogateescape)."""
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value.replace("\x00", "\ufffd")


def _moment(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def record(outcomes: list[AttemptRecord], *, now: datetime) -> None:
    with transaction.atomic():
        _execute(RECORD_SQL, record_params(outcomes, now=now))


def record_params(outcomes: list[AttemptRecord], *, now: datetime) -> list:
    batch = [
        {
            "id": o.delivery_id,
            "token": o.token,
            "number": o.number,
            "at": _moment(o.at),
            "status_code": o.status_code,
            "request_headers": o.request_headers,
            "response_headers": {_text(k): _text(v) for k, v in o.response_headers.items()},
            "response_body": _text(o.response_body),
            "duration_ms": o.duration_ms,
            "error": _text(o.error),
            "succeeded": o.succeeded,
            "status": o.status,
            "schedule_position": o.schedule_position,
            "next_attempt_at": _moment(o.next_attempt_at),
        }
        for o in outcomes
    ]
    return [json.dumps(batch), now, now]


SUCCEEDED_SQL = """
WITH before AS (
    -- Locked first, so of two recorders that see one webhook recover only one is told it was in trouble;
    -- NO KEY UPDATE, the lock the UPDATE takes anyway: a publish holding KEY SHARE on the webhook is not blocked.
    SELECT id, failing_level > 0 OR circuit_opened_at IS NOT NULL AS announced
    FROM subscriptions_webhook WHERE id = ANY(%s::text[]) ORDER BY id FOR NO KEY UPDATE
)
UPDATE subscriptions_webhook w
SET consecutive_failures = 0, failing_since = NULL, circuit_opened_at = NULL, circuit_probe_at = NULL,
    failing_level = 0, last_success_at = r.at, updated_at = %s
FROM unnest(%s::text[], %s::timestamptz[]) AS r(id, at), before b
WHERE w.id = r.id AND b.id = r.id
RETURNING w.id, b.announced
"""


def webhooks_succeeded(*, last_success: dict[str, datetime], now: datetime) -> list[str]:
    # Sorted ids: concurrent recorders lock the webhooks they share in the same order.
    ids = sorted(last_success)
    rows = _execute(SUCCEEDED_SQL, [ids, now, ids, [last_success[i] for i in ids]])
    return sorted(webhook_id for webhook_id, announced in rows if announced)
