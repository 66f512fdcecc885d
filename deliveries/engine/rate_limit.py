"""A webhook's rate limit, kept for every worker process and host together in its database row.

The limit is a generic cell rate algorithm (GCRA): the row's `rate_limited_until` is the earliest
moment the next request may start, and each request reserved moves it one interval (a second or
a minute divided by the limit) on. A worker reserves start times for the deliveries it took, a
few seconds ahead at most; those beyond that go back to the database, due when their turn
comes, in their order. Nothing is failed for the limit: waiting is not an attempt.
"""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deliveries import bulk
from deliveries.engine import engine
from subscriptions.models import Webhook


@dataclass(frozen=True)
class Reservation:
    starts: list[datetime]  # the start time of each request reserved, in order
    next_free: datetime  # when the first request not reserved could start


def rate_reserve(*, webhook_id: str, interval: float, count: int, now: datetime, horizon: float) -> Reservation:
    """Reserve up to `count` start times no later than `horizon` seconds from `now`."""
    step = timedelta(seconds=interval)
    limit = now + timedelta(seconds=horizon)
    with transaction.atomic():
        stored = (
            Webhook.objects.select_for_update(no_key=True)
            .filter(pk=webhook_id)
            .values_list("rate_limited_until", flat=True)
            .first()
        )
        at = max(stored or now, now)
        starts = []
        while len(starts) < count and at <= limit:
            starts.append(at)
            at += step
        if starts:
            Webhook.objects.filter(pk=webhook_id).update(rate_limited_until=at)
    return Reservation(starts, at)


def deliveries_pace(jobs: list[engine.Job], *, token: str) -> list[engine.Job]:
    """Space the jobs of rate-limited webhooks by their limits (deliveries/engine/rate_limit.py): each
    reserved job gets its start time; the rest go back to the database, due when the limit frees
    up (not an attempt: the schedule is untouched). Returns the jobs to submit."""
    limited: dict[str, list[engine.Job]] = {}
    ready = []
    for job in jobs:
        if job.rate_interval:
            limited.setdefault(job.webhook_id, []).append(job)
        else:
            ready.append(job)
    now, started = timezone.now(), time.monotonic()
    # A reservation covers at most one request timeout (or half the queue budget): a job's wait for
    # its turn stays inside its send lease.
    horizon = min(settings.AGENTBOT_HTTP_TIMEOUT, engine.queue_budget() / 2)
    for webhook_id, paced in limited.items():
        interval = paced[0].rate_interval
        reserved = rate_reserve(webhook_id=webhook_id, interval=interval, count=len(paced), now=now, horizon=horizon)
        for job, start in zip(paced, reserved.starts, strict=False):
            job.not_before = started + (start - now).total_seconds()
            ready.append(job)
        later = [job.delivery_id for job in paced[len(reserved.starts) :]]
        if later:
            bulk.release(ids=later, token=token, next_attempt_at=reserved.next_free)
    return ready
