"""Reads of deliveries and attempts, for the admin (dashboard, webhook pages) and the metrics
collector (agentbot/metrics.py). Each walks one of the existing indexes over a bounded range, so
they stay cheap as the tables grow."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Case, CharField, Count, Min, OuterRef, Q, Subquery, Sum, When
from django.db.models.functions import Coalesce, TruncHour

from core.charts import Hour
from deliveries.models import Attempt, Delivery
from subscriptions.models import Webhook

# The recent past the dashboard and the metrics report on.
METRICS_WINDOW = timedelta(hours=1)
# A read never takes more rows than this per table, however busy the last hour was.
METRICS_ROW_CAP = 100_000
# Upper bounds of the attempt-duration histogram, in milliseconds (the HTTP timeout is 15 s).
LATENCY_BUCKETS_MS = (25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 15000, 30000)

PENDING, SUCCEEDED = Delivery.Status.PENDING, Delivery.Status.SUCCEEDED


def _latest(queryset, field: str, since: datetime, cap: int | None):
    recent = queryset.filter(**{f"{field}__gte": since})
    if cap is None:
        return recent
    return queryset.filter(pk__in=Subquery(recent.order_by(f"-{field}").values("pk")[:cap]))


def deliveries_by_status(*, since: datetime, cap: int | None = None) -> dict[tuple[str, str], int]:
    """{(status, format): count} of the deliveries created since `since` (with `cap`, of at most
    the latest `cap` of each status)."""
    counts: dict[tuple[str, str], int] = {}
    for status in Delivery.Status.values:
        # One query per status: each is a range scan of the (status, -created_at) index, in order,
        # so the cap bounds what is read.
        rows = (
            _latest(Delivery.objects.filter(status=status), "created_at", since, cap)
            .values_list("webhook__format")
            .annotate(n=Count("id"))
            .order_by()
        )
        counts.update({(status, fmt): n for fmt, n in rows})
    return counts


@dataclass(frozen=True)
class AttemptStats:
    outcomes: dict[str, int]
    buckets: list[tuple[int, int]]  # (upper bound in ms, attempts at or under it), cumulative
    count: int
    sum_ms: int


def attempt_stats(*, since: datetime, cap: int | None = METRICS_ROW_CAP) -> AttemptStats:
    """Outcomes and a duration histogram of the attempts made since `since`, in one query."""
    buckets = {f"le_{b}": Count("id", filter=Q(duration_ms__lte=b)) for b in LATENCY_BUCKETS_MS}
    row = _latest(Attempt.objects.all(), "at", since, cap).aggregate(
        count=Count("id"),
        sum_ms=Sum("duration_ms"),
        n_succeeded=Count("id", filter=Q(succeeded=True)),
        n_rejected=Count("id", filter=Q(succeeded=False, status_code__isnull=False)),
        n_error=Count("id", filter=Q(succeeded=False, status_code__isnull=True)),
        **buckets,
    )
    return AttemptStats(
        outcomes={name: row[f"n_{name}"] for name in ("succeeded", "rejected", "error")},
        buckets=[(b, row[f"le_{b}"]) for b in LATENCY_BUCKETS_MS],
        count=row["count"],
        sum_ms=row["sum_ms"] or 0,
    )


@dataclass(frozen=True)
class Backlog:
    due: int
    oldest_due_at: datetime | None

    def oldest_age(self, now: datetime) -> timedelta:
        return max(now - self.oldest_due_at, timedelta(0)) if self.oldest_due_at else timedelta(0)


def deliveries_with_waiting_behind(queryset):
    """`queryset` with `waiting_behind`: for a pending ordered delivery that is not its key's head,
    the head's id (the delivery that must succeed or fail first); None otherwise. One correlated
    subquery along delivery_key_queue_idx per row shown."""
    head = Delivery.objects.filter(
        Q(sequence__lt=OuterRef("sequence")) | Q(sequence=OuterRef("sequence"), id__lt=OuterRef("id")),
        webhook_id=OuterRef("webhook_id"),
        ordering_key=OuterRef("ordering_key"),
        ordering_key__isnull=False,
        status=PENDING,
    ).order_by("sequence", "id")
    return queryset.annotate(
        waiting_behind=Case(
            When(status=PENDING, ordering_key__isnull=False, then=Subquery(head.values("id")[:1])),
            default=None,
            output_field=CharField(),
        )
    )


def due_backlog(*, now: datetime) -> Backlog:
    """Pending deliveries whose next attempt time has come (in flight or waiting for a worker); a
    paused webhook's deliveries wait by design and are not counted."""
    row = (
        Delivery.objects.filter(status=PENDING, next_attempt_at__lte=now)
        .exclude(Webhook.paused_q("webhook__"))
        .aggregate(due=Count("id"), oldest=Min("next_attempt_at"))
    )
    return Backlog(due=row["due"], oldest_due_at=row["oldest"])


def webhooks_with_health(queryset, *, now: datetime):
    """`queryset` of webhooks with their last delivery and their last 24 hours, as correlated
    subqueries along the (webhook, -created_at) index: one query for a whole page of webhooks."""
    latest = Delivery.objects.filter(webhook=OuterRef("pk")).order_by("-created_at")
    recent = Delivery.objects.filter(webhook=OuterRef("pk"), created_at__gte=now - timedelta(hours=24))

    def count(deliveries):
        return Coalesce(Subquery(deliveries.values("webhook").annotate(n=Count("pk")).values("n")[:1]), 0)

    return queryset.annotate(
        last_delivery_status=Subquery(latest.values("status")[:1]),
        last_delivery_code=Subquery(latest.values("last_status_code")[:1]),
        succeeded_24h=count(recent.filter(status=SUCCEEDED)),
        finished_24h=count(recent.exclude(status=PENDING)),
    )


def deliveries_per_hour(*, now: datetime, hours: int = 24, webhook: Webhook | None = None) -> list[Hour]:
    """Deliveries created in each of the last `hours` clock hours (the current one last), by status."""
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    deliveries = Delivery.objects.filter(created_at__gte=first)
    if webhook is not None:
        deliveries = deliveries.filter(webhook=webhook)
    rows = deliveries.annotate(hour=TruncHour("created_at")).values_list("hour", "status").annotate(n=Count("id")).order_by()
    counts: dict[datetime, dict[str, int]] = {}
    for hour, status, n in rows:
        counts.setdefault(hour, {})[status] = n
    starts = [first + timedelta(hours=i) for i in range(hours)]
    return [Hour(start, counts.get(start, {})) for start in starts]
