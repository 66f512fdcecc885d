"""Send: hand due deliveries to the workers (the sweep), take them with a send lease, render each
attempt for its webhook's format, record what the receiver answered, and schedule the next attempt."""

import logging
import re
import time
from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.db import DataError
from django.utils import timezone

from core.logging import log_delivery
from deliveries import bulk
from deliveries.engine import endpoint_health, engine, http, outbox
from deliveries.engine.endpoint_auth import webhook_controls
from deliveries.engine.outbox import dispatch_until, lease_token
from deliveries.engine.rate_limit import deliveries_pace
from deliveries.formats import get_format
from deliveries.formats.types import DeliveryFormat
from deliveries.models import Delivery
from deliveries.services.alerts import alert_email_queue, deliveries_exhausted_publish
from deliveries.services.publish import event_publish
from subscriptions.controls import rate_interval

logger = logging.getLogger(__name__)


# --- enqueue ----------------------------------------------------------------------------------------
def deliveries_claim_due(*, now: datetime, limit: int) -> tuple[list[str], str]:
    """Take a dispatch lease on up to `limit` due deliveries whose lease has run out."""
    token = lease_token()
    ids = bulk.claim_due(now=now, limit=limit, until=dispatch_until(now), token=token)
    return ids, token


def deliveries_sweep(*, max_batches: int = 50) -> int:
    """Hand every due delivery with an expired lease to the workers; returns how many."""
    now, token = timezone.now(), lease_token()
    probes = endpoint_health.probes_claim(now=now, until=dispatch_until(now), token=token)
    if probes:
        outbox.enqueue(probes, token)
    handed = len(probes)
    # Ordered keys whose next delivery was not enqueued when the one before it ended.
    stalled = bulk.claim_stalled(now=now, limit=settings.AGENTBOT_SEND_BATCH, until=dispatch_until(now), token=token)
    if stalled:
        outbox.enqueue(stalled, token)
    handed += len(stalled)
    for _ in range(max_batches):
        ids, token = deliveries_claim_due(now=timezone.now(), limit=settings.AGENTBOT_SEND_BATCH)
        if not ids:
            break
        outbox.enqueue(ids, token)
        handed += len(ids)
    return handed


# --- take, render, send ------------------------------------------------------------------------
def deliveries_take(*, ids: list[str], token: str, skip_webhooks: list[str] = ()) -> list[bulk.Taken]:
    """Swap the dispatch lease for a send lease; only deliveries still held by `token` are taken,
    and none to `skip_webhooks` (saturated ones: their lease is cut short, and the sweep offers them
    again once it runs out). An ordered delivery that waits behind another of its key is not taken:
    it goes when the one before it ends (deliveries_next)."""
    now = timezone.now()
    taken, behind = bulk.take(
        ids=ids,
        token=token,
        until=now + engine.send_lease(),
        skip_webhooks=skip_webhooks,
        hold_until=now + engine.overflow_hold(),
    )
    if behind:
        # The one before may have ended while this take ran: then no one else hands these out.
        deliveries_next(ids=behind)
    return taken


def deliveries_next(*, ids: list[str]) -> int:
    """Hand the next delivery of each ordering key of `ids` (whose head just ended, or may have)
    to the workers at once, rather than at the next sweep; returns how many. Only ordered
    deliveries' ids need to be passed; a failure is left to the sweep."""
    if not ids:
        return 0
    now, token = timezone.now(), lease_token()
    try:
        claimed = bulk.claim_next(ids=ids, now=now, until=dispatch_until(now), token=token)
    except Exception:  # what ended is recorded; the sweep hands the next ones out
        logger.exception("could not enqueue the next deliveries of %d ordering keys", len(ids))
        return 0
    if claimed:
        outbox.this_process().put(claimed, token)
    return len(claimed)


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
            body = bodies[(event.event_id, fmt.name)] = body_render(fmt, event)
    except Unsendable:
        raise
    except Exception as exc:
        log_delivery(
            logger,
            logging.ERROR,
            "body cannot be rendered",
            delivery_id=taken.id,
            event_id=event.event_id,
            webhook_id=taken.webhook_id,
            exc_info=True,
        )
        raise Unsendable(
            f"the {taken.format} body cannot be rendered from this event ({type(exc).__name__}: {exc}); "
            "not retried, as every attempt would render it the same way",
            final=True,
        ) from exc
    if isinstance(body, Unsendable):
        raise body
    if webhook is None:
        raise Unsendable(taken.problem, final=False)
    try:
        controls = webhook_controls(webhook)
    except ValueError as exc:  # a stored certificate the ssl module no longer loads
        raise Unsendable(f"the webhook's TLS settings cannot be used: {exc}", final=False) from exc
    return engine.Job(
        delivery_id=taken.id,
        token=token,
        webhook_id=webhook.id,
        event_id=event.event_id,
        url=webhook.url,
        format=fmt.name,
        event_type=event.event_type,
        body=body,
        secrets=webhook.signing_secrets(now),
        attempt_count=taken.attempt_count,
        schedule_position=taken.schedule_position,
        exchange=webhook.exchange,
        routing_key=webhook.routing_key,
        broker_password=webhook.broker_password,
        controls=controls,
        rate_interval=rate_interval(webhook.rate_limit),
        ordering_key=taken.ordering_key,
    )


def body_render(fmt: DeliveryFormat, event) -> bytes | Unsendable:
    """The event's body in `fmt`, within the render budgets (docs/limits.md): a body over
    AGENTBOT_RENDER_MAX_BYTES is unsendable for good; one that took longer than
    AGENTBOT_RENDER_BUDGET seconds is not sent this time (the attempt fails and the delivery moves
    on its schedule), so no event can hold a worker's task thread attempt after attempt unnoticed.
    The answer is kept per event and format, so each delivery of the event fares the same."""
    started = time.monotonic()
    body = fmt.render(event)
    took = time.monotonic() - started
    if len(body) > settings.AGENTBOT_RENDER_MAX_BYTES:
        return Unsendable(
            f"the {fmt.name} body is {len(body)} bytes, over the limit of {settings.AGENTBOT_RENDER_MAX_BYTES} bytes "
            "(AGENTBOT_RENDER_MAX_BYTES); not retried, as every attempt would render it the same way",
            final=True,
        )
    if took > settings.AGENTBOT_RENDER_BUDGET:
        return Unsendable(
            f"rendering the {fmt.name} body took {took:.1f} s, over the budget of {settings.AGENTBOT_RENDER_BUDGET:g} s "
            "(AGENTBOT_RENDER_BUDGET); not sent this time",
            final=False,
        )
    return body


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
    taken = deliveries_take(ids=ids, token=token, skip_webhooks=sender.saturated())
    now = timezone.now()
    bodies: dict = {}
    jobs, off, unsendable, later = [], [], [], []
    # Rendering is paid from the send lease's margin for recording: a batch stops rendering after
    # half of it, and what is left goes back, due as it was (each batch renders at least one).
    render_until = time.monotonic() + settings.AGENTBOT_DISPATCH_LEASE / 2
    for t in taken:
        if t.webhook is not None and not t.webhook.enabled:
            off.append(t)
            continue
        if (jobs or unsendable) and time.monotonic() > render_until:
            later.append(t.id)
            continue
        try:
            jobs.append(delivery_render(t, token=token, now=now, bodies=bodies))
        except Unsendable as exc:
            unsendable.append((t, exc))
    # The wait for a slot is counted from here: rendering never eats the send's deadline.
    deadline = time.monotonic() + engine.queue_budget() + engine.START_GRACE
    if off:
        deliveries_hold_or_drop(off, token=token)
    if later:
        bulk.release(ids=later, token=token)
    if unsendable:
        attempts_record_unsendable(unsendable, token=token)
    if any(job.rate_interval for job in jobs):
        jobs = deliveries_pace(jobs, token=token)  # deliveries/engine/rate_limit.py
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
            ids=ids,
            token=token,
            status=Delivery.Status.FAILED,
            next_attempt_at=None,
            last_error=f"webhook is disabled: {reason}",
        )
    deliveries_next(ids=[t.id for t in taken if not t.webhook.paused and t.ordering_key is not None])


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
            bulk.AttemptRecord(
                delivery_id=taken.id,
                token=token,
                number=taken.attempt_count + 1,
                at=now,
                status_code=None,
                request_headers={},
                response_headers={},
                response_body="",
                duration_ms=0,
                error=problem.reason,
                succeeded=False,
                status=status,
                schedule_position=position,
                next_attempt_at=next_at,
            )
        )
        log_delivery(
            logger,
            logging.WARNING,
            "attempt not sent",
            delivery_id=taken.id,
            event_id=taken.event.event_id,
            webhook_id=taken.webhook_id,
            attempt=taken.attempt_count + 1,
            error=problem.reason,
            delivery_status=status,
        )
    outcomes_store(outcomes, now=now)
    ended = {o.delivery_id for o in outcomes if o.status != Delivery.Status.PENDING}
    deliveries_next(ids=[t.id for t, _ in items if t.id in ended and t.ordering_key is not None])


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
    gone_reasons: dict[str, str] = {}
    for job, result in sent:
        fmt = get_format(job.format)
        ok = attempt_succeeded(job, result, fmt)
        gone = attempt_gone(job, result, fmt) if not ok else ""
        error = result.error or gone or ("" if ok else _failure_reason(fmt.name, result))
        status, position, next_at = delivery_schedule_next(
            format_name=fmt.name,
            schedule_position=job.schedule_position,
            ok=ok,
            now=now,
            status_code=result.status_code,
            headers=result.headers,
            gone=bool(gone),
        )
        gone_reasons[job.delivery_id] = gone
        outcomes.append(
            bulk.AttemptRecord(
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
    # An ordered delivery that ended lets the next of its key go now.
    deliveries_next(
        ids=[
            job.delivery_id
            for (job, _), o in zip(sent, outcomes, strict=True)
            if job.ordering_key is not None and o.status != Delivery.Status.PENDING
        ]
    )
    for (job, _), outcome in zip(sent, outcomes, strict=True):
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
        webhooks_health_record(
            outcomes=[
                endpoint_health.EndpointAnswer(job.webhook_id, o.succeeded, o.status_code, o.at, gone_reasons[job.delivery_id])
                for (job, _), o in zip(sent, outcomes, strict=True)
            ]
        )
    except Exception:  # the attempts are stored; health catches up with the next outcomes
        logger.exception("could not update endpoint health for %d attempts", len(outcomes))
    ended = [(job, o) for (job, _), o in zip(sent, outcomes, strict=True) if o.status == Delivery.Status.FAILED]
    if ended:
        try:
            deliveries_exhausted_publish(ended=ended)
        except Exception:  # the attempts are stored; only the announcement is lost
            logger.exception("could not publish delivery.exhausted for %d deliveries", len(ended))


def webhooks_health_record(*, outcomes: list[endpoint_health.EndpointAnswer]) -> None:
    """Fold attempt outcomes into their webhooks' health and publish what their owners should hear
    of (a circuit opened, a webhook disabled), each with the change it tells of."""
    for notice in endpoint_health.webhooks_record_outcomes(outcomes=outcomes):
        event, _ = event_publish(site=notice.site, event_type=notice.event_type, data=notice.data)
        alert_email_queue(event_id=event.id, event_type=notice.event_type)


def outcomes_store(outcomes: list[bulk.AttemptRecord], *, now: datetime) -> None:
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
            [
                replace(
                    outcome, response_headers={}, response_body="", error=f"{outcome.error}; {note}" if outcome.error else note
                )
            ],
            now=now,
        )


def attempt_succeeded(job: engine.Job, result: http.OutboundResult, fmt: DeliveryFormat) -> bool:
    """A broker's confirm, or the format's rule (`fmt`, the job's) on the HTTP answer."""
    if job.is_broker:
        return result.confirmed and not result.error
    # An answer cut short (its body timed out, the connection dropped) is no success, whatever its
    # status line said: an attempt is succeeded or failed with an error, never both.
    return result.status_code is not None and not result.error and fmt.is_success(result.status_code, result.body)


def attempt_gone(job: engine.Job, result: http.OutboundResult, fmt: DeliveryFormat) -> str:
    """Why a failed HTTP answer means the receiver is gone for good (the format's rule), or ""."""
    if job.is_broker or result.status_code is None:
        return ""
    return fmt.gone(result.status_code, result.body)


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
    gone: bool = False,
) -> tuple[str, int, datetime | None]:
    """After an attempt: (status, schedule position, next attempt time) from the format's schedule,
    stretched by a 429/503's Retry-After; a 410 Gone, or an answer the format reads as the receiver
    gone for good (`gone`), ends the delivery (its webhook is disabled)."""
    schedule = get_format(format_name).retry_schedule()
    position = schedule_position + 1
    if ok:
        return Delivery.Status.SUCCEEDED, position, None
    if position < len(schedule) and status_code != 410 and not gone:
        delay = endpoint_health.retry_delay(schedule[position], status_code=status_code, headers=headers or {}, now=now)
        return Delivery.Status.PENDING, position, now + timedelta(seconds=delay)
    return Delivery.Status.FAILED, position, None


# Request headers that carry a credential rather than a signature (the chat2desk format sends the
# integration's API token): the attempt log keeps that they were sent, never their value.
CREDENTIAL_HEADERS = {"authorization", "cookie"}
# A webhook's own headers (delivery controls) whose names say they carry a credential, as an API
# gateway's X-Api-Key does: kept as sent, shown redacted.
CREDENTIAL_HEADER_WORDS = re.compile(r"key|token|secret|auth|passw|session|credential", re.IGNORECASE)


@lru_cache(maxsize=1024)
def header_is_credential(name: str) -> bool:
    return name.lower() in CREDENTIAL_HEADERS or bool(CREDENTIAL_HEADER_WORDS.search(name))


def stored_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: "[redacted]" if header_is_credential(name) else value for name, value in headers.items()}
