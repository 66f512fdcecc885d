"""Writes of the delivery engine: publish an event, hand deliveries to workers, send, record.

Leases: a delivery is owned by whoever holds an unexpired `leased_until` with its `lease_token`.
Publishing and the sweep take a *dispatch* lease and queue the ids with the token; the worker
that receives them swaps it for a *send* lease before the HTTP call. A lost queue message or a
dead worker only costs the lease: when it runs out, the sweep hands the delivery out again.
"""

import logging
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from core.logging import log_delivery
from core.models import Site
from deliveries import bulk, endpoint_health, engine, handoff, http, jsjson
from deliveries.formats import get_format
from deliveries.models import Delivery, Event
from deliveries.preview import webhook_test_data
from subscriptions.event_types import CATALOGUE, CONNECTOR_EVENTS, WEBHOOK_TEST
from subscriptions.models import Webhook, subscribed

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


# Request headers that carry a credential rather than a signature (the chat2desk format sends the
# integration's API token): the attempt log keeps that they were sent, never their value.
CREDENTIAL_HEADERS = {"authorization"}


def stored_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: "[redacted]" if name.lower() in CREDENTIAL_HEADERS else value for name, value in headers.items()}


def text_is_storable(text: str) -> bool:
    """PostgreSQL text and jsonb hold neither NUL nor unpaired surrogates (they are not UTF-8)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
    data_json = event_validate(event_type=event_type, data=data, connector=only_webhook is not None)
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
                    event = Event.objects.create(site=site, type=event_type, data=data, idempotency_key=idempotency_key)
            except IntegrityError:
                return Event.objects.get(site=site, idempotency_key=idempotency_key), False
        elif only_webhook is not None:
            event = Event.objects.create(site=site, type=event_type, data=data)
        # Only what the choice needs (loading the secrets would decrypt each one), read now: the
        # caller's copy of a webhook may predate its circuit opening.
        if only_webhook is not None:
            webhooks = bulk.webhook_candidates(webhook_id=only_webhook.pk)
        else:
            if idempotency_key:
                candidates = bulk.webhook_candidates(site_id=site.pk)
            else:  # the usual publish: the event stored and the webhooks read in one statement
                event, candidates = bulk.event_create(
                    site_id=site.pk, event_type=event_type, data=data, data_json=data_json
                )
            webhooks = [
                w for w in candidates if subscribed(w.events, event_type, data) and get_format(w.format).carries(event_type)
            ]
        now = timezone.now()
        token = handoff.OUTBOX.token()
        flowing = [w.id for w in webhooks if not w.held]
        # A paused webhook's deliveries are stored and wait for it to be enabled again; an open
        # circuit's are stored and held, its probes let them through later.
        held = [w.id for w in webhooks if w.held]
        sent = bulk.deliveries_create(
            event_id=event.id, webhook_ids=flowing, now=now, until=_dispatch_until(now), token=token
        )
        waiting = bulk.deliveries_create(event_id=event.id, webhook_ids=held, now=now, until=None, token=None)
        ids = [delivery_id for delivery_id, _ in sent]
        if ids:
            # Batched with other publishes of this process by deliveries/handoff.py.
            transaction.on_commit(lambda: handoff.OUTBOX.put(ids, token))
    event.published = Published(data_json=data_json, deliveries=sent + waiting, at=now)
    return event, True


@dataclass(frozen=True)
class Published:
    """What a publish stored, kept on the new event (`event.published`) for its caller to show
    without reading it back."""

    data_json: str
    deliveries: list[tuple[str, str]]  # (delivery id, webhook id)
    at: datetime


# --- sweep ------------------------------------------------------------------------------------
def deliveries_claim_due(*, now: datetime, limit: int) -> tuple[list[str], str]:
    """Take a dispatch lease on up to `limit` due deliveries whose lease has run out."""
    token = _lease_token()
    ids = bulk.claim_due(now=now, limit=limit, until=_dispatch_until(now), token=token)
    return ids, token


def deliveries_sweep(*, max_batches: int = 50) -> int:
    """Hand every due delivery with an expired lease to the workers; returns how many."""
    now, token = timezone.now(), _lease_token()
    probes = endpoint_health.probes_claim(now=now, until=_dispatch_until(now), token=token)
    if probes:
        handoff.send(probes, token)
    handed = len(probes)
    for _ in range(max_batches):
        ids, token = deliveries_claim_due(now=timezone.now(), limit=settings.AGENTBOT_SEND_BATCH)
        if not ids:
            break
        handoff.send(ids, token)
        handed += len(ids)
    return handed


# --- send -------------------------------------------------------------------------------------
def deliveries_take(*, ids: list[str], token: str, skip_webhooks: list[str] = ()) -> list[bulk.Taken]:
    """Swap the dispatch lease for a send lease; only deliveries still held by `token` are taken,
    and none to `skip_webhooks` (saturated ones: their lease is cut short, and the sweep offers them
    again once it runs out)."""
    now = timezone.now()
    return bulk.take(
        ids=ids, token=token, until=now + engine.send_lease(), skip_webhooks=skip_webhooks,
        hold_until=now + engine.overflow_hold(),
    )


class Unsendable(Exception):
    """A taken delivery that cannot become a request: recorded as a failed attempt with `reason`,
    without calling its webhook. `final`: retrying cannot help (the same event renders the same
    way every time), so the delivery fails at once instead of waiting out its schedule."""

    def __init__(self, reason: str, *, final: bool) -> None:
        super().__init__(reason)
        self.reason, self.final = reason, final


def delivery_render(taken: bulk.Taken, *, token: str, now: datetime, bodies: dict) -> engine.Job:
    """The next attempt of a taken delivery: its body for the webhook's format and the secrets to
    sign with (the engine signs when it sends). `bodies` shares one body per event and format.
    Raises Unsendable for a delivery that cannot be sent."""
    event, webhook = taken.event, taken.webhook
    try:
        fmt = get_format(taken.format)
        body = bodies.get((event.event_id, fmt.name))
        if body is None:
            body = bodies[(event.event_id, fmt.name)] = fmt.render(event)
    except Exception as exc:
        log_delivery(
            logger, logging.ERROR, "body cannot be rendered", delivery_id=taken.id, event_id=event.event_id,
            webhook_id=taken.webhook_id, exc_info=True,
        )
        raise Unsendable(
            f"the {taken.format} body cannot be rendered from this event ({type(exc).__name__}: {exc}); "
            "not retried, as every attempt would render it the same way",
            final=True,
        ) from exc
    if webhook is None:
        raise Unsendable(taken.problem, final=False)
    return engine.Job(
        delivery_id=taken.id, token=token, webhook_id=webhook.id, event_id=event.event_id, url=webhook.url,
        format=fmt.name, event_type=event.event_type, body=body, secrets=webhook.signing_secrets(now),
        attempt_count=taken.attempt_count, schedule_position=taken.schedule_position,
    )


def deliveries_send(*, ids: list[str], token: str, wait: bool = True) -> int:
    """One attempt for each delivery still held by `token`; returns how many went to the engine.

    With `wait` the call returns once those attempts are recorded; without it (the Celery task) it
    returns at once, so a worker never waits on a slow endpoint. Each delivery stands alone: one
    that cannot be rendered or signed is recorded as a failed attempt that says why, and the others
    of the batch are sent.
    """
    sender = engine.engine(attempts_record, deliveries_release)
    if not sender.wait_for_room(len(ids), timeout=settings.AGENTBOT_DISPATCH_LEASE / 2):
        return 0  # the engine is full: the dispatch lease runs out and the sweep hands these out again
    deadline = time.monotonic() + engine.queue_budget() + engine.START_GRACE
    taken = deliveries_take(ids=ids, token=token, skip_webhooks=sender.saturated())
    now = timezone.now()
    bodies: dict = {}
    jobs, off, unsendable = [], [], []
    for t in taken:
        if t.webhook is not None and not t.webhook.enabled:
            off.append(t)
            continue
        try:
            jobs.append(delivery_render(t, token=token, now=now, bodies=bodies))
        except Unsendable as exc:
            unsendable.append((t, exc))
    if off:
        deliveries_hold_or_drop(off, token=token)
    if unsendable:
        attempts_record_unsendable(unsendable, token=token)
    latch = engine.Latch(len(jobs)) if wait else None
    for job in jobs:
        job.deadline, job.done = deadline, latch
    refused = sender.submit(jobs)
    if refused:
        deliveries_defer(refused, token=token)
        if latch:
            latch.count_down(len(refused))
    if latch:
        latch.wait(timeout=engine.send_lease().total_seconds())
    return len(jobs) - len(refused)


def deliveries_hold_or_drop(taken: list[bulk.Taken], *, token: str) -> None:
    """Deliveries taken just as their webhook was turned off: a paused webhook's go back to wait,
    due as they were (no attempt); a webhook the service disabled ends its deliveries failed."""
    bulk.release(ids=[t.id for t in taken if t.webhook.paused], token=token)
    dropped: dict[str, list[str]] = {}
    for t in taken:
        if not t.webhook.paused:
            dropped.setdefault(t.webhook.disabled_reason, []).append(t.id)
    for reason, ids in dropped.items():
        bulk.release(
            ids=ids, token=token, status=Delivery.Status.FAILED, next_attempt_at=None,
            last_error=f"webhook is disabled: {reason}",
        )


def attempts_record_unsendable(items: list[tuple[bulk.Taken, Unsendable]], *, token: str) -> None:
    """Store an attempt for each delivery that could not be sent, with the reason, and move it on
    by its schedule (or fail it when retrying cannot help). Its webhook was not called, so its
    endpoint health is untouched."""
    now = timezone.now()
    outcomes = []
    for taken, problem in items:
        if problem.final:
            status, position, next_at = Delivery.Status.FAILED, taken.schedule_position + 1, None
        else:
            status, position, next_at = delivery_schedule_next(
                format_name=taken.format, schedule_position=taken.schedule_position, ok=False, now=now
            )
        outcomes.append(
            bulk.Outcome(
                delivery_id=taken.id, token=token, number=taken.attempt_count + 1, at=now, status_code=None,
                request_headers={}, response_headers={}, response_body="", duration_ms=0, error=problem.reason,
                succeeded=False, status=status, schedule_position=position, next_attempt_at=next_at,
            )
        )
        log_delivery(
            logger, logging.WARNING, "attempt not sent", delivery_id=taken.id, event_id=taken.event.event_id,
            webhook_id=taken.webhook_id, attempt=taken.attempt_count + 1, error=problem.reason, delivery_status=status,
        )
    outcomes_store(outcomes, now=now)


def deliveries_defer(jobs: list[engine.Job], *, token: str) -> None:
    """Give back deliveries whose webhook is saturated: due again after one request timeout, for
    the sweep; not an attempt, so the schedule is untouched."""
    later = timezone.now() + timedelta(seconds=settings.AGENTBOT_HTTP_TIMEOUT)
    bulk.release(ids=[j.delivery_id for j in jobs], token=token, next_attempt_at=later)


def deliveries_release(jobs: list[engine.Job]) -> None:
    """Give back deliveries the engine did not send in time: due as they were, for the sweep."""
    by_token: dict[str, list[str]] = {}
    for job in jobs:
        by_token.setdefault(job.token, []).append(job.delivery_id)
    for token, ids in by_token.items():
        bulk.release(ids=ids, token=token)


def attempts_record(sent: list[tuple[engine.Job, http.OutboundResult]]) -> None:
    """Store the attempts and move each delivery on (succeeded, next retry, or failed), in bulk."""
    now = timezone.now()
    outcomes = []
    for job, result in sent:
        fmt = get_format(job.format)
        ok = result.status_code is not None and fmt.is_success(result.status_code, result.body)
        error = result.error or ("" if ok else _failure_reason(fmt.name, result))
        status, position, next_at = delivery_schedule_next(
            format_name=fmt.name,
            schedule_position=job.schedule_position,
            ok=ok,
            now=now,
            status_code=result.status_code,
            headers=result.headers,
        )
        outcomes.append(
            bulk.Outcome(
                delivery_id=job.delivery_id,
                token=job.token,
                number=job.attempt_count + 1,
                at=job.started or now,
                status_code=result.status_code,
                request_headers=stored_headers(job.request.headers) if job.request else {},
                response_headers=result.headers,
                response_body=result.body.decode("utf-8", errors="replace"),
                duration_ms=result.duration_ms,
                error=error,
                succeeded=ok,
                status=status,
                schedule_position=position,
                next_attempt_at=next_at,
            )
        )
    outcomes_store(outcomes, now=now)
    for (job, _), outcome in zip(sent, outcomes):
        log_delivery(
            logger,
            logging.DEBUG if outcome.succeeded else logging.INFO,
            "attempt succeeded" if outcome.succeeded else "attempt failed",
            delivery_id=job.delivery_id,
            event_id=job.event_id,
            webhook_id=job.webhook_id,
            attempt=outcome.number,
            status_code=outcome.status_code,
            duration_ms=outcome.duration_ms,
            error=outcome.error,
            delivery_status=outcome.status,
        )
    try:
        endpoint_health.webhooks_record_outcomes(
            outcomes=[
                endpoint_health.Outcome(job.webhook_id, o.succeeded, o.status_code, o.at)
                for (job, _), o in zip(sent, outcomes)
            ]
        )
    except Exception:  # the attempts are stored; health catches up with the next outcomes
        logger.exception("could not update endpoint health for %d attempts", len(outcomes))


def outcomes_store(outcomes: list[bulk.Outcome], *, now: datetime) -> None:
    """Store a batch of outcomes. If the database refuses the batch for its data, each is stored
    alone, and one it still refuses is stored without the receiver's headers and body: one odd
    response must not leave a whole batch unrecorded (to be sent again when its leases run out).
    A database that is down raises, for the engine to try again."""
    try:
        bulk.record(outcomes, now=now)
    except DataError:
        if len(outcomes) > 1:
            for outcome in outcomes:
                outcomes_store([outcome], now=now)
            return
        (outcome,) = outcomes
        logger.exception("the database refused an attempt's response; storing the attempt without it")
        note = "the receiver's response headers and body could not be stored"
        bulk.record(
            [replace(outcome, response_headers={}, response_body="", error=f"{outcome.error}; {note}" if outcome.error else note)],
            now=now,
        )


def _failure_reason(format_name: str, result: http.OutboundResult) -> str:
    if result.status_code is not None and 300 <= result.status_code < 400:
        return f"redirect ({result.status_code}) not followed"
    if result.status_code is not None and 200 <= result.status_code < 300:
        return f"the {format_name} format needs a different response body"
    return f"HTTP {result.status_code}"


def delivery_schedule_next(
    *,
    format_name: str,
    schedule_position: int,
    ok: bool,
    now: datetime,
    status_code: int | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[str, int, datetime | None]:
    """After an attempt: (status, schedule position, next attempt time) from the format's schedule,
    stretched by a 429/503's Retry-After; a 410 Gone ends the delivery (its webhook is disabled)."""
    schedule = get_format(format_name).retry_schedule()
    position = schedule_position + 1
    if ok:
        return Delivery.Status.SUCCEEDED, position, None
    if position < len(schedule) and status_code != 410:
        delay = endpoint_health.retry_delay(schedule[position], status_code=status_code, headers=headers or {}, now=now)
        return Delivery.Status.PENDING, position, now + timedelta(seconds=delay)
    return Delivery.Status.FAILED, position, None

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
            transaction.on_commit(lambda: handoff.send(ids, token))
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
        data=webhook_test_data(webhook=webhook),
        only_webhook=webhook,
    )
    return event
