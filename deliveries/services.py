"""Writes of the delivery engine: publish an event, hand deliveries to workers, send, record.

Leases: a delivery is owned by whoever holds an unexpired `leased_until` with its `lease_token`.
Publishing and the sweep take a *dispatch* lease and queue the ids with the token; the worker
that receives them swaps it for a *send* lease before the HTTP call. A lost queue message or a
dead worker only costs the lease: when it runs out, the sweep hands the delivery out again.
"""

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from agentbot.models import Site
from deliveries import http, jsjson
from deliveries.formats import Envelope, Signing, get_format
from deliveries.models import Attempt, Delivery, Event
from subscriptions.event_types import CATALOGUE, WEBHOOK_TEST
from subscriptions.models import Webhook

logger = logging.getLogger(__name__)


class PublishError(ValueError):
    """The event cannot be published as given; the message says why, for the caller."""

    status_code = 400


class EventTooLarge(PublishError):
    status_code = 413


class DeliveryBusy(ValueError):
    """The delivery is being sent right now."""


def _lease_token() -> str:
    return secrets.token_hex(16)


def _dispatch_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.AGENTBOT_DISPATCH_LEASE)


# --- publish ----------------------------------------------------------------------------------
def event_validate(*, event_type: str, data) -> None:
    if event_type not in CATALOGUE:
        known = ", ".join(sorted(CATALOGUE))
        raise PublishError(f"unknown event type {event_type!r}; known types: {known}")
    if not isinstance(data, dict):
        raise PublishError("data must be a JSON object")
    try:
        jsjson.check_safe(data, path="data")
    except jsjson.UnsafeJSONError as exc:
        raise PublishError(str(exc)) from exc
    size = len(jsjson.dumps(data))
    limit = settings.AGENTBOT_MAX_EVENT_DATA_BYTES
    if size > limit:
        raise EventTooLarge(f"data is {size} bytes once serialised; the limit is {limit} bytes ({limit // 1024} KB)")


def event_publish(
    *,
    site: Site,
    event_type: str,
    data: dict,
    idempotency_key: str | None = None,
    only_webhook: Webhook | None = None,
) -> tuple[Event, bool]:
    """Store the event and one delivery per subscribed webhook, in the caller's transaction.

    Returns (event, created). With an idempotency key already used on this site the stored event
    is returned and nothing new is sent. Workers are kicked only when the transaction commits, so
    a rollback stores and sends nothing.
    """
    event_validate(event_type=event_type, data=data)
    with transaction.atomic():
        if idempotency_key:
            existing = Event.objects.filter(site=site, idempotency_key=idempotency_key).first()
            if existing:
                return existing, False
        try:
            with transaction.atomic():
                event = Event.objects.create(
                    site=site, type=event_type, data=data, idempotency_key=idempotency_key or None
                )
        except IntegrityError:
            # A concurrent publish with the same key won the race.
            return Event.objects.get(site=site, idempotency_key=idempotency_key), False
        if only_webhook is not None:
            webhooks = [only_webhook]
        else:
            webhooks = [
                w
                for w in Webhook.objects.filter(site=site, enabled=True)
                if w.wants(event_type) and get_format(w.format).carries(event_type)
            ]
        now = timezone.now()
        token = _lease_token()
        deliveries = Delivery.objects.bulk_create(
            Delivery(
                event=event,
                webhook=w,
                next_attempt_at=now,
                leased_until=_dispatch_until(now),
                lease_token=token,
            )
            for w in webhooks
        )
        if deliveries:
            ids = [d.id for d in deliveries]
            transaction.on_commit(lambda: dispatch(ids, token))
    return event, True


def dispatch(ids: list[str], token: str) -> None:
    """Queue deliveries for a worker. If the broker is down the sweep sends them later."""
    from deliveries.tasks import deliveries_send

    batch = settings.AGENTBOT_SEND_BATCH
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        try:
            deliveries_send.delay(chunk, token)
        except Exception:  # broker unreachable: the lease runs out and the sweep takes over
            logger.warning("could not queue %d deliveries; the sweep will send them", len(chunk), exc_info=True)


# --- sweep ------------------------------------------------------------------------------------
def deliveries_due(*, now: datetime):
    return Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now).filter(
        Q(leased_until__isnull=True) | Q(leased_until__lt=now)
    )


def deliveries_claim_due(*, now: datetime, limit: int) -> tuple[list[str], str]:
    """Take a dispatch lease on up to `limit` due deliveries whose lease has run out."""
    token = _lease_token()
    with transaction.atomic():
        ids = list(
            deliveries_due(now=now)
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            Delivery.objects.filter(id__in=ids).update(leased_until=_dispatch_until(now), lease_token=token)
    return ids, token


def deliveries_sweep(*, max_batches: int = 50) -> int:
    """Hand every due delivery with an expired lease to the workers; returns how many."""
    handed = 0
    for _ in range(max_batches):
        ids, token = deliveries_claim_due(now=timezone.now(), limit=settings.AGENTBOT_SEND_BATCH)
        if not ids:
            break
        dispatch(ids, token)
        handed += len(ids)
    return handed


# --- send -------------------------------------------------------------------------------------
def _send_lease(count: int) -> timedelta:
    rounds = count // max(settings.AGENTBOT_SEND_CONCURRENCY, 1) + 1
    return timedelta(seconds=settings.AGENTBOT_DISPATCH_LEASE + rounds * (settings.AGENTBOT_HTTP_TIMEOUT + 5))


def deliveries_take(*, ids: list[str], token: str) -> list[Delivery]:
    """Swap the dispatch lease for a send lease; only deliveries still held by `token` are taken."""
    owned = Delivery.objects.filter(id__in=ids, lease_token=token, status=Delivery.Status.PENDING)
    if not owned.update(leased_until=timezone.now() + _send_lease(len(ids))):
        return []
    return list(owned.select_related("event", "webhook"))


@dataclass
class _Prepared:
    delivery: Delivery
    request: http.OutboundRequest


def delivery_render(delivery: Delivery, now: datetime, bodies: dict | None = None) -> http.OutboundRequest:
    """The exact request for the next attempt of `delivery`: body, signed headers, URL."""
    event, webhook = delivery.event, delivery.webhook
    fmt = get_format(webhook.format)
    cache_key = (event.id, fmt.name)
    body = bodies.get(cache_key) if bodies is not None else None
    if body is None:
        envelope = Envelope(event.id, event.type, event.site_id, event.created_at, event.data)
        body = jsjson.dumps(fmt.build_body(envelope))
        if bodies is not None:
            bodies[cache_key] = body
    signing = Signing(delivery.id, event.type, body, webhook.signing_secrets(now), int(now.timestamp()))
    return http.OutboundRequest(url=webhook.url, body=body, headers=fmt.headers(signing))


def deliveries_send(*, ids: list[str], token: str) -> int:
    """One attempt for each delivery still held by `token`; returns how many were attempted."""
    taken = deliveries_take(ids=ids, token=token)
    if not taken:
        return 0
    now = timezone.now()
    bodies: dict = {}
    prepared, paused = [], []
    for delivery in taken:
        if delivery.webhook.enabled:
            prepared.append(_Prepared(delivery, delivery_render(delivery, now, bodies)))
        else:
            paused.append(delivery)
    results = http.post_many([p.request for p in prepared])
    attempts_record(token=token, sent=list(zip(prepared, results)), started=now)
    for delivery in paused:
        delivery_finish(delivery, token=token, status=Delivery.Status.FAILED, error="webhook is disabled")
    return len(prepared)


def attempts_record(*, token: str, sent: list[tuple[_Prepared, http.OutboundResult]], started: datetime) -> None:
    """Store the attempts and move each delivery on: succeeded, next retry, or failed."""
    now = timezone.now()
    attempts = []
    with transaction.atomic():
        for prepared, result in sent:
            delivery = prepared.delivery
            fmt = get_format(delivery.webhook.format)
            ok = result.status_code is not None and fmt.is_success(result.status_code, result.body)
            error = result.error or ("" if ok else _failure_reason(fmt.name, result))
            attempts.append(
                Attempt(
                    delivery=delivery,
                    number=delivery.attempt_count + 1,
                    at=started,
                    status_code=result.status_code,
                    request_headers=prepared.request.headers,
                    response_headers=result.headers,
                    response_body=result.body.decode("utf-8", errors="replace"),
                    duration_ms=result.duration_ms,
                    error=error,
                    succeeded=ok,
                )
            )
            delivery_schedule_next(delivery, token=token, ok=ok, result=result, error=error, now=now)
        Attempt.objects.bulk_create(attempts)


def _failure_reason(format_name: str, result: http.OutboundResult) -> str:
    if result.status_code is not None and 300 <= result.status_code < 400:
        return f"redirect ({result.status_code}) not followed"
    if result.status_code is not None and 200 <= result.status_code < 300:
        return f"the {format_name} format needs a different response body"
    return f"HTTP {result.status_code}"


def delivery_schedule_next(
    delivery: Delivery, *, token: str, ok: bool, result: http.OutboundResult, error: str, now: datetime
) -> None:
    schedule = get_format(delivery.webhook.format).retry_schedule()
    position = delivery.schedule_position + 1
    fields = {
        "attempt_count": delivery.attempt_count + 1,
        "schedule_position": position,
        "last_attempt_at": now,
        "last_status_code": result.status_code,
        "last_error": error,
        "leased_until": None,
        "lease_token": None,
        "updated_at": now,
    }
    if ok:
        fields.update(status=Delivery.Status.SUCCEEDED, next_attempt_at=None)
    elif position < len(schedule):
        fields.update(status=Delivery.Status.PENDING, next_attempt_at=now + timedelta(seconds=schedule[position]))
    else:
        fields.update(status=Delivery.Status.FAILED, next_attempt_at=None)
    Delivery.objects.filter(pk=delivery.pk, lease_token=token).update(**fields)


def delivery_finish(delivery: Delivery, *, token: str, status: str, error: str) -> None:
    Delivery.objects.filter(pk=delivery.pk, lease_token=token).update(
        status=status, next_attempt_at=None, leased_until=None, lease_token=None, last_error=error
    )


# --- operator actions -------------------------------------------------------------------------
def _requeue(queryset, *, now: datetime) -> list[str]:
    """Make deliveries due now with a dispatch lease, and queue them once the caller commits."""
    token = _lease_token()
    with transaction.atomic():
        ids = list(queryset.select_for_update().values_list("id", flat=True))
        for delivery in Delivery.objects.filter(id__in=ids).select_related("webhook"):
            schedule = get_format(delivery.webhook.format).retry_schedule()
            # A finished delivery gets one more attempt; a waiting one is only brought forward.
            position = delivery.schedule_position
            if delivery.status != Delivery.Status.PENDING:
                position = max(len(schedule) - 1, 0)
            Delivery.objects.filter(pk=delivery.pk).update(
                status=Delivery.Status.PENDING,
                schedule_position=position,
                next_attempt_at=now,
                leased_until=_dispatch_until(now),
                lease_token=token,
                updated_at=now,
            )
        if ids:
            transaction.on_commit(lambda: dispatch(ids, token))
    return ids


def delivery_retry(*, delivery: Delivery) -> Delivery:
    """Send the delivery again now (one more attempt if it had finished)."""
    now = timezone.now()
    if delivery.status == Delivery.Status.PENDING and delivery.leased_until and delivery.leased_until > now:
        raise DeliveryBusy("this delivery is being sent right now; look again in a few seconds")
    _requeue(Delivery.objects.filter(pk=delivery.pk), now=now)
    delivery.refresh_from_db()
    return delivery


def deliveries_redeliver(*, webhook: Webhook, since: datetime) -> int:
    """Send every delivery of `webhook` that failed since `since` once more."""
    failed = Delivery.objects.filter(webhook=webhook, status=Delivery.Status.FAILED, created_at__gte=since)
    return len(_requeue(failed, now=timezone.now()))


def webhook_send_test(*, webhook: Webhook) -> Event:
    event, _ = event_publish(
        site=webhook.site,
        event_type=WEBHOOK_TEST.name,
        data={"webhook_id": webhook.id, "message": "This is a test event from Agentbot."},
        only_webhook=webhook,
    )
    return event
