"""A webhook's rate limit, kept for every worker process and host together in its database row.

The limit is a generic cell rate algorithm (GCRA): the row's `rate_limited_until` is the earliest
moment the next request may start, and each request reserved moves it one interval (a second or
a minute divided by the limit) on. A worker reserves start times for the deliveries it took, a
few seconds ahead at most; those beyond that go back to the database, due when their turn
comes, in their order. Nothing is failed for the limit: waiting is not an attempt.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction

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
