"""Operational numbers read from the database: served to Prometheus at `GET /metrics` and shown on
the admin dashboard.

Everything is read at scrape time (the database is the source of truth, so every web process
reports the same numbers) by the apps' selectors (deliveries/, subscriptions/, inbound/
selectors.py), with queries that stay cheap as the tables grow: deliveries and attempts of the
last hour (at most the latest METRICS_ROW_CAP of each), the due part of the pending index, and
the small webhook table.
docs/OPERATIONS.md (its metrics table) says what each metric means.
"""

from django.db import DatabaseError, connection, transaction
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from deliveries.models import Delivery
from deliveries.selectors import METRICS_ROW_CAP, METRICS_WINDOW, attempt_stats, deliveries_by_status, due_backlog
from inbound.selectors import inbound_pending
from subscriptions.models import WebhookFormat
from subscriptions.selectors import WEBHOOK_STATES, webhook_states

STATEMENT_TIMEOUT_MS = 5000


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
            [
                ([status, fmt], deliveries.get((status, fmt), 0))
                for status in Delivery.Status.values
                for fmt in WebhookFormat.values
            ],
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
