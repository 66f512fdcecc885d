"""The engine's statements on PostgreSQL: each one statement (UPDATE … RETURNING, SKIP LOCKED,
arrays unnested on the server), bound server-side through psycopg."""

import json
from datetime import datetime
from functools import lru_cache

import psycopg
from django.db import connection, transaction

from core.ids import new_delivery_id
from deliveries.bulk.common import Candidate, Outcome, Taken, _ready, _webhook
from deliveries.formats import Envelope
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
_CANDIDATE_COLUMNS = "id, events::text, format, circuit_opened_at, NOT enabled, filter::text"
# Webhooks that get deliveries of new events: enabled ones and paused ones (whose deliveries wait);
# not those the service disabled.
_GETS_EVENTS = "(enabled OR disabled_reason = '')"


def _candidates(rows: list[tuple]) -> list[Candidate]:
    # The filter stays JSON text: most webhooks have none, and one that has is compiled once per text.
    return [Candidate(id, json.loads(events), format, opened, paused, cond) for id, events, format, opened, paused, cond in rows]


def event_create(*, site_id: str, event_type: str, data: dict, data_json: str) -> tuple[Event, list[Candidate]]:
    event = Event(site_id=site_id, type=event_type, data=data)
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


def deliveries_create(*, given: dict, webhook_ids: list[str], now: datetime) -> list[tuple[str, str]]:
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
    return [(i, w) for i, w in zip(ids, webhook_ids, strict=True) if i in inserted]


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


def claim_due(*, now: datetime, limit: int, until: datetime, token: str) -> list[str]:
    return [row[0] for row in _execute(CLAIM_SQL, [until, token, now, now, limit])]


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
       w.id, w.url, w.format, w.enabled, w.disabled_reason, w.secret, w.previous_secret, w.previous_secret_expires_at,
       w.exchange, w.routing_key, w.broker_password,
       w.headers::text, w.auth::text, w.auth_secret, w.rate_limit::text, w.tls_client_cert, w.tls_client_key, w.tls_ca_cert
FROM taken t
JOIN deliveries_event e ON e.id = t.event_id
JOIN subscriptions_webhook w ON w.id = t.webhook_id
WHERE t.status = 'pending' AND NOT t.skipped
"""


def take(*, ids, token, until, skip_webhooks, hold_until) -> list[Taken]:
    params = {"until": until, "hold": hold_until, "ids": list(ids), "token": token, "skip": list(skip_webhooks)}
    rows = _execute(TAKE_SQL, params)
    events: dict[str, Envelope] = {}
    webhooks: dict[str, tuple[Webhook | None, str]] = {}
    for row in rows:
        event_id, data = row[3], row[7]
        if data is not None:
            events[event_id] = Envelope(event_id, row[4], row[5], row[6], data)
        if row[8] not in webhooks:
            webhooks[row[8]] = _ready(lambda row=row: _webhook(*row[8:26]))
    return [Taken(row[0], row[1], row[2], events[row[3]], row[8], row[10], *webhooks[row[8]]) for row in rows]


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
    with transaction.atomic():
        _execute(RECORD_SQL, [json.dumps(batch), now, now])


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
