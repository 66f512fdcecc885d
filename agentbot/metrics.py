"""Operational numbers read from the database: served to Prometheus at `GET /metrics` and shown on
the admin dashboard.

Everything is read at scrape time (the database is the source of truth, so every web process
reports the same numbers), with queries that stay cheap as the tables grow: each walks one of the
existing indexes over a bounded range — deliveries and attempts of the last hour (at most the
latest METRICS_ROW_CAP of each), the due part of the pending index, and the small webhook table.
docs/OPERATIONS.md (the README's metrics table) says what each metric means.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Min, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce, TruncHour
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from core.charts import Hour

from inbound.models import INBOUND_PENDING, InboundEvent
from deliveries.models import Attempt, Delivery
from subscriptions.models import Webhook, WebhookFormat

METRICS_WINDOW = timedelta(hours=1)
# A scrape never reads more rows than this per table, however busy the last hour was.
METRICS_ROW_CAP = 100_000
# Upper bounds of the attempt-duration histogram, in milliseconds (the HTTP timeout is 15 s).
LATENCY_BUCKETS_MS = (25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 15000, 30000)
STATEMENT_TIMEOUT_MS = 5000

PENDING, SUCCEEDED = Delivery.Status.PENDING, Delivery.Status.SUCCEEDED


# --- selectors (also used by the admin dashboard) ---------------------------------------------
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


def due_backlog(*, now: datetime) -> Backlog:
    """Pending deliveries whose next attempt time has come (in flight or waiting for a worker); a
    paused webhook's deliveries wait by design and are not counted."""
    row = Delivery.objects.filter(status=PENDING, next_attempt_at__lte=now).exclude(Webhook.paused_q("webhook__")).aggregate(
        due=Count("id"), oldest=Min("next_attempt_at")
    )
    return Backlog(due=row["due"], oldest_due_at=row["oldest"])


# A webhook's health states; they overlap (a failing webhook is also enabled).
WEBHOOK_STATES = {
    "enabled": Q(enabled=True),
    "healthy": Q(enabled=True, consecutive_failures=0),
    "failing": Q(consecutive_failures__gt=0),  # at least one failure since the last success
    "circuit_open": Q(circuit_opened_at__isnull=False),
    "disabled_by_operator": Webhook.paused_q(),  # paused
    "disabled_by_service": Q(enabled=False) & ~Q(disabled_reason=""),
}


def inbound_pending() -> Backlog:
    """Inbound webhooks not processed yet: their count and the oldest arrival (a partial index)."""
    row = InboundEvent.objects.filter(status__in=INBOUND_PENDING).aggregate(due=Count("id"), oldest=Min("received_at"))
    return Backlog(row["due"], row["oldest"])


def webhook_states() -> dict[str, int]:
    """How many webhooks are in each of WEBHOOK_STATES, in one pass over the webhook table."""
    # Aliases differ from field names: Django refuses an aggregate named like a field it filters on.
    row = Webhook.objects.aggregate(**{f"n_{state}": Count("id", filter=q) for state, q in WEBHOOK_STATES.items()})
    return {state: row[f"n_{state}"] for state in WEBHOOK_STATES}


def webhooks_failing(*, limit: int = 20):
    """Webhooks in trouble, worst first: an open circuit, a failure streak, or disabled by the service."""
    trouble = WEBHOOK_STATES["failing"] | WEBHOOK_STATES["circuit_open"] | WEBHOOK_STATES["disabled_by_service"]
    return Webhook.objects.filter(trouble).select_related("site").order_by("-consecutive_failures", "-failing_since")[:limit]


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


# --- Prometheus -------------------------------------------------------------------------------
def _gauge(name: str, documentation: str, labels: list[str], samples) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for label_values, value in samples:
        family.add_metric(label_values, value)
    return family


class DatabaseCollector:
    """Reads the numbers at scrape time, within a statement timeout, so a slow database makes a
    slow scrape fail rather than pile up."""

    def collect(self):
        try:
            families = list(self._families())
        except DatabaseError:
            yield _gauge("agentbot_database_up", "1 when the metrics could be read from the database.", [], [([], 0)])
            return
        yield _gauge("agentbot_database_up", "1 when the metrics could be read from the database.", [], [([], 1)])
        yield from families

    def _families(self):
        now = timezone.now()
        since = now - METRICS_WINDOW
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            deliveries = deliveries_by_status(since=since, cap=METRICS_ROW_CAP)
            attempts = attempt_stats(since=since)
            backlog = due_backlog(now=now)
            webhooks = webhook_states()
            inbound = inbound_pending()

        yield _gauge(
            "agentbot_deliveries_recent",
            "Deliveries created in the last hour, by current status and webhook format.",
            ["status", "format"],
            [([status, fmt], deliveries.get((status, fmt), 0)) for status in Delivery.Status.values for fmt in WebhookFormat.values],
        )
        yield _gauge(
            "agentbot_attempts_recent",
            "HTTP attempts made in the last hour, by outcome (succeeded, rejected, error).",
            ["outcome"],
            [([outcome], n) for outcome, n in attempts.outcomes.items()],
        )
        yield GaugeHistogramMetricFamily(
            "agentbot_attempt_duration_seconds",
            "Duration of the HTTP attempts made in the last hour (a window, not a running total).",
            buckets=[(str(b / 1000), n) for b, n in attempts.buckets] + [("+Inf", attempts.count)],
            gsum_value=attempts.sum_ms / 1000,
        )
        yield _gauge("agentbot_deliveries_due", "Pending deliveries whose next attempt time has come.", [], [([], backlog.due)])
        yield _gauge(
            "agentbot_oldest_due_delivery_age_seconds",
            "How long the oldest due delivery has been waiting for its attempt (0 when none is due).",
            [],
            [([], backlog.oldest_age(now).total_seconds())],
        )
        yield _gauge(
            "agentbot_webhooks",
            "Webhooks by state (overlapping): " + ", ".join(WEBHOOK_STATES) + ".",
            ["state"],
            [([state], n) for state, n in webhooks.items()],
        )


        yield _gauge(
            "agentbot_inbound_pending",
            "Inbound webhooks stored and not yet processed (a worker is on them, or they wait for a retry).",
            [],
            [([], inbound.due)],
        )
        yield _gauge(
            "agentbot_oldest_pending_inbound_age_seconds",
            "How long the oldest unprocessed inbound webhook has waited since it arrived (0 when none).",
            [],
            [([], inbound.oldest_age(now).total_seconds())],
        )


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(DatabaseCollector())


def metrics_view(request):
    encoder, content_type = choose_encoder(request.META.get("HTTP_ACCEPT", ""))
    return HttpResponse(encoder(REGISTRY), content_type=content_type)
