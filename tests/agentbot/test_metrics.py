"""GET /metrics: Prometheus text read from the database at scrape time, with bounded queries."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agentbot import metrics
from deliveries.models import Attempt, Delivery
from deliveries.services.operator import webhook_send_test
from inbound.models import InboundEvent, Integration

pytestmark = pytest.mark.django_db


def scrape(client) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def delivery(webhook, *, status: str, attempts: list[tuple[int | None, int, bool]] = (), **changes) -> Delivery:
    """A webhook.test delivery in `status` with attempts of (status code, duration ms, succeeded)."""
    d = webhook_send_test(webhook=webhook).deliveries.get()
    Delivery.objects.filter(pk=d.pk).update(status=status, leased_until=None, lease_token=None, **changes)
    for number, (code, ms, ok) in enumerate(attempts, 1):
        Attempt.objects.create(delivery=d, number=number, at=timezone.now(), status_code=code, duration_ms=ms, succeeded=ok)
    return d


def test_metrics_report_deliveries_by_status_and_format(client, site, webhook_factory):
    agentbot = webhook_factory(site=site, format="agentbot")
    standard = webhook_factory(site=site, format="standard")
    delivery(agentbot, status="succeeded")
    delivery(agentbot, status="succeeded")
    delivery(standard, status="failed")
    delivery(standard, status="failed", created_at=timezone.now() - timedelta(hours=2))  # outside the window

    samples = scrape(client)
    assert samples[("agentbot_deliveries_recent", (("format", "agentbot"), ("status", "succeeded")))] == 2
    assert samples[("agentbot_deliveries_recent", (("format", "standard"), ("status", "failed")))] == 1
    assert samples[("agentbot_deliveries_recent", (("format", "leads"), ("status", "pending")))] == 0
    assert samples[("agentbot_database_up", ())] == 1


def test_metrics_report_attempt_outcomes_and_a_latency_histogram(client, site, webhook_factory):
    webhook = webhook_factory(site=site)
    delivery(webhook, status="succeeded", attempts=[(None, 5000, False), (503, 80, False), (200, 30, True)])
    delivery(webhook, status="pending", attempts=[(200, 400, False)])  # 2xx, but not what the format wants

    samples = scrape(client)
    outcome = {name: samples[("agentbot_attempts_recent", (("outcome", name),))] for name in ("succeeded", "rejected", "error")}
    assert outcome == {"succeeded": 1, "rejected": 2, "error": 1}

    def bucket(le: str) -> float:
        return samples[("agentbot_attempt_duration_seconds_bucket", (("le", le),))]

    assert bucket("0.05") == 1 and bucket("0.1") == 2 and bucket("0.5") == 3 and bucket("5.0") == 4
    assert bucket("+Inf") == 4
    assert samples[("agentbot_attempt_duration_seconds_gsum", ())] == pytest.approx(5.51)


def test_metrics_report_the_due_backlog_and_its_oldest_age(client, site, webhook_factory):
    webhook = webhook_factory(site=site)
    now = timezone.now()
    delivery(webhook, status="pending", next_attempt_at=now - timedelta(minutes=5))
    delivery(webhook, status="pending", next_attempt_at=now - timedelta(seconds=10))
    delivery(webhook, status="pending", next_attempt_at=now + timedelta(minutes=30))  # waiting for a retry: not due

    samples = scrape(client)
    assert samples[("agentbot_deliveries_due", ())] == 2
    assert 300 <= samples[("agentbot_oldest_due_delivery_age_seconds", ())] < 400


def test_metrics_report_open_circuits_and_disabled_webhooks(client, site, webhook_factory):
    now = timezone.now()
    webhook_factory(site=site)
    webhook_factory(site=site, consecutive_failures=11, failing_since=now, circuit_opened_at=now)
    webhook_factory(site=site, enabled=False)
    webhook_factory(site=site, enabled=False, disabled_reason="the receiver answered 410 Gone")

    samples = scrape(client)
    states = {dict(labels)["state"]: value for (name, labels), value in samples.items() if name == "agentbot_webhooks"}
    assert states == {
        "enabled": 2,
        "healthy": 1,
        "failing": 1,
        "circuit_open": 1,
        "disabled_by_operator": 1,
        "disabled_by_service": 1,
    }


def test_a_scrape_costs_the_same_few_queries_however_much_there_is(client, site, webhook_factory):
    webhook = webhook_factory(site=site)
    with CaptureQueriesContext(connection) as empty:
        scrape(client)
    for _ in range(5):
        delivery(webhook, status="failed", attempts=[(500, 20, False)])
    with CaptureQueriesContext(connection) as busy:
        scrape(client)
    assert len(busy) == len(empty) <= 10  # seven reads and the timeout, in the test transaction's savepoint


def test_metrics_speak_openmetrics_when_asked(client):
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    text = response.content.decode()
    assert "# TYPE agentbot_attempt_duration_seconds gaugehistogram" in text and text.endswith("# EOF\n")


def test_metrics_say_the_database_is_down_instead_of_failing(client, monkeypatch):
    def unavailable(**kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(metrics, "deliveries_by_status", unavailable)
    samples = scrape(client)
    assert samples == {("agentbot_database_up", ()): 0}


def test_inbound_backlog_counts_what_no_worker_finished(client, site):
    integration = Integration.objects.create(site=site)
    long_ago = timezone.now() - timedelta(minutes=10)
    InboundEvent.objects.create(integration=integration, kind="message", payload={}, received_at=long_ago)
    InboundEvent.objects.create(integration=integration, kind="message", payload={}, status="accepted")
    InboundEvent.objects.create(integration=integration, kind="message", payload={}, status="processed", received_at=long_ago)
    samples = scrape(client)
    assert samples[("agentbot_inbound_pending", ())] == 2
    assert 590 <= samples[("agentbot_oldest_pending_inbound_age_seconds", ())] < 700
