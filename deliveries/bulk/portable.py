"""The engine's statements through the ORM, row by row: for the embedded SQLite of `make run`.

The same contract as deliveries/bulk/postgresql.py (tests/deliveries/test_bulk.py runs both on
PostgreSQL, which runs this code too); slower, and on SQLite a claim's lock is the database's own
(IMMEDIATE transactions, agentbot/settings.py), so it suits one machine, not a fleet of workers.
"""

from datetime import datetime
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import Max, Q

from core import jsjson
from deliveries.bulk.common import PENDING, AttemptRecord, Candidate, Taken, _ready, due, heads, webhook_candidates
from deliveries.formats.types import Envelope
from deliveries.models import Attempt, Delivery, Event
from subscriptions.models import Webhook


def event_create(
    *, site_id: str, event_type: str, data: dict, data_json: str, ordering_key: str | None = None
) -> tuple[Event, list[Candidate]]:
    event = Event(site_id=site_id, type=event_type, data=data, ordering_key=ordering_key)
    event.save(force_insert=True)
    return event, webhook_candidates(site_id=site_id)


def events_create(*, events: list[Event], data_json: list[str]) -> set[str]:
    stored = set()
    for event in events:
        try:
            with transaction.atomic():
                event.save(force_insert=True)
        except IntegrityError:  # the site used this idempotency key meanwhile
            continue
        stored.add(event.pk)
    return stored


def candidates_read(*, site_id: str) -> list[Candidate]:
    return webhook_candidates(site_id=site_id)


def deliveries_create(
    *,
    given: dict,
    event_ids: list[str],
    webhook_ids: list[str],
    keys: list[str | None],
    now: datetime,
    behind: list[str] | None = None,
) -> list[tuple[str, str, str]]:
    with transaction.atomic():
        # A webhook deleted since it was chosen gets none (its row is locked until this commits).
        present = set(Webhook.objects.select_for_update().filter(pk__in=set(webhook_ids)).values_list("id", flat=True))
        rows = [(e, w, k) for e, w, k in zip(event_ids, webhook_ids, keys, strict=True) if w in present]
        numbers = sequences(len(rows))
        made = []
        for (e, w, k), n in zip(rows, numbers, strict=True):
            delivery = Delivery(event_id=e, webhook_id=w, ordering_key=k, sequence=n, **given)
            if k is not None and Delivery.objects.filter(webhook_id=w, ordering_key=k, status=PENDING).exists():
                # Behind its key's head: no message and no due time (claim_next hands it out).
                delivery.leased_until = delivery.lease_token = delivery.next_attempt_at = None
                if behind is not None and given["lease_token"] is not None:
                    behind.append(delivery.id)
            made.append(delivery)
        created = Delivery.objects.bulk_create(made)
    return [(d.id, d.event_id, d.webhook_id) for d in created]


def keys_lock(keys: list[str]) -> None:
    """Nothing: SQLite writes one transaction at a time."""


def sequences(count: int) -> list[int]:
    # Inside a write transaction on SQLite, which no other writer can interleave with.
    last = Delivery.objects.aggregate(last=Max("sequence"))["last"] or 0
    return list(range(last + 1, last + 1 + count))


def claim_next(*, ids: list[str], now: datetime, until: datetime, token: str) -> list[str]:
    claimed = []
    with transaction.atomic():
        keys = set(
            Delivery.objects.filter(id__in=ids, ordering_key__isnull=False).values_list("webhook_id", "ordering_key").distinct()
        )
        for webhook_id, key in sorted(keys):
            head = (
                Delivery.objects.filter(webhook_id=webhook_id, ordering_key=key, status=PENDING)
                .order_by("sequence", "id")
                .values_list("id", flat=True)
                .first()
            )
            if head and _free(now).filter(pk=head).update(leased_until=until, lease_token=token):
                Delivery.objects.filter(pk=head, next_attempt_at__isnull=True).update(next_attempt_at=now)
                claimed.append(head)
    return claimed


def _free(now: datetime):
    """Pending, due or waiting without a due time, unleased, of a webhook that is not held."""
    return (
        Delivery.objects.filter(status=PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
        .exclude(webhook__circuit_opened_at__isnull=False)
        .exclude(Webhook.paused_q("webhook__"))
    )


def claim_stalled(*, now: datetime, limit: int, until: datetime, token: str) -> list[str]:
    with transaction.atomic():
        keys = (
            Delivery.objects.filter(status=PENDING, ordering_key__isnull=False)
            .values_list("webhook_id", "ordering_key")
            .distinct()
        )
        heads_found = [
            Delivery.objects.filter(webhook_id=w, ordering_key=k, status=PENDING).order_by("sequence", "id").first()
            for w, k in sorted(keys)
        ]
        stalled = [d.id for d in heads_found if d is not None and d.next_attempt_at is None][:limit]
        ids = list(_free(now).filter(id__in=stalled).values_list("id", flat=True))
        Delivery.objects.filter(id__in=ids).update(leased_until=until, lease_token=token, next_attempt_at=now)
    return ids


def claim_due(*, now: datetime, limit: int, until: datetime, token: str) -> list[str]:
    with transaction.atomic():
        ids = list(
            due(now=now).order_by("next_attempt_at").select_for_update(skip_locked=True).values_list("id", flat=True)[:limit]
        )
        if ids:
            Delivery.objects.filter(id__in=ids).update(leased_until=until, lease_token=token)
    return ids


def take(*, ids, token, until, skip_webhooks, hold_until) -> tuple[list[Taken], list[str]]:
    held = Delivery.objects.filter(id__in=ids, lease_token=token, status=PENDING)
    sendable = heads(held)
    behind = list(held.exclude(pk__in=sendable.values("pk")).values_list("id", flat=True))
    if behind:
        Delivery.objects.filter(id__in=behind).update(leased_until=None, lease_token=None, next_attempt_at=None)
    held = Delivery.objects.filter(id__in=ids, lease_token=token, status=PENDING)
    if hold_until is not None:
        held.filter(webhook_id__in=skip_webhooks, leased_until__gt=hold_until).update(leased_until=hold_until)
    owned = held.exclude(webhook_id__in=skip_webhooks)
    if not owned.update(leased_until=until):
        return [], behind
    taken = []
    for d in owned.select_related("event"):
        e = d.event
        envelope = Envelope(e.id, e.type, e.site_id, e.created_at, jsjson.dumps(e.data).decode("utf-8"))
        webhook, problem = _ready(partial(Webhook.objects.get, pk=d.webhook_id))
        # Only a webhook that cannot be read whole costs a second query, for its format.
        webhook_format = webhook.format if webhook else Webhook.objects.values_list("format", flat=True).get(pk=d.webhook_id)
        taken.append(
            Taken(
                d.id,
                d.attempt_count,
                d.schedule_position,
                envelope,
                d.webhook_id,
                webhook_format,
                webhook,
                problem,
                d.ordering_key,
            )
        )
    return taken, behind


def record(outcomes: list[AttemptRecord], *, now: datetime) -> None:
    with transaction.atomic():
        existing = set(Delivery.objects.filter(id__in=[o.delivery_id for o in outcomes]).values_list("id", flat=True))
        for o in outcomes:
            Delivery.objects.filter(pk=o.delivery_id, lease_token=o.token).update(
                status=o.status,
                attempt_count=o.number,
                schedule_position=o.schedule_position,
                next_attempt_at=o.next_attempt_at,
                last_attempt_at=now,
                last_status_code=o.status_code,
                last_error=o.error,
                leased_until=None,
                lease_token=None,
                updated_at=now,
            )
        Attempt.objects.bulk_create(
            Attempt(
                delivery_id=o.delivery_id,
                number=o.number,
                at=o.at,
                status_code=o.status_code,
                request_headers=o.request_headers,
                response_headers=o.response_headers,
                response_body=o.response_body,
                duration_ms=o.duration_ms,
                error=o.error,
                succeeded=o.succeeded,
            )
            for o in outcomes
            if o.delivery_id in existing
        )


def webhooks_succeeded(*, last_success: dict[str, datetime], now: datetime) -> list[str]:
    announced = []
    with transaction.atomic():
        for webhook in Webhook.objects.select_for_update().filter(pk__in=sorted(last_success)).order_by("pk"):
            if webhook.failing_level > 0 or webhook.circuit_opened_at is not None:
                announced.append(webhook.pk)
            Webhook.objects.filter(pk=webhook.pk).update(
                consecutive_failures=0,
                failing_since=None,
                circuit_opened_at=None,
                circuit_probe_at=None,
                failing_level=0,
                last_success_at=last_success[webhook.pk],
                updated_at=now,
            )
    return announced
