"""Warnings before a webhook is lost: webhook.failing at 50, 75 and 90 per cent of the way to being
disabled, webhook.recovered when it succeeds again, delivery.exhausted when a delivery ends
failed, and one e-mail to the site's contacts per state change (Django's locmem backend)."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from deliveries.engine import engine, http
from deliveries.engine.endpoint_health import EndpointAnswer
from deliveries.models import Delivery, Event
from deliveries.services import alerts
from deliveries.services.send import attempts_record, webhooks_health_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_tasks(monkeypatch):
    """The e-mail task's service runs in this process, when the transaction commits."""
    from deliveries import tasks

    assert tasks.webhook_alert_email.name == alerts.ALERT_TASK
    monkeypatch.setattr(alerts, "alert_email_enqueue", lambda event_id: alerts.webhook_alert_email(event_id=event_id))


def fail_since(webhook, days: float, *, ok: bool = False, django_capture_on_commit_callbacks=None):
    """One outcome of the webhook, its failing streak having begun `days` ago."""
    webhook.__class__.objects.filter(pk=webhook.pk).update(failing_since=timezone.now() - timedelta(days=days))
    with django_capture_on_commit_callbacks(execute=True):
        webhooks_health_record(outcomes=[EndpointAnswer(webhook.id, ok, 200 if ok else 500, timezone.now())])


def warnings_of(site, webhook) -> list[tuple[str, int | None]]:
    found = Event.objects.filter(site=site, type__in=["webhook.failing", "webhook.recovered", "webhook.disabled"])
    return [(e.type, e.data.get("percent")) for e in found.order_by("created_at") if e.data["webhook_id"] == webhook.id]


def test_failing_warnings_at_50_75_90_then_recovered_each_once_and_each_mailed_once(
    site, webhook_factory, settings, eager_tasks, django_capture_on_commit_callbacks
):
    settings.AGENTBOT_DISABLE_AFTER_DAYS = 10
    settings.AGENTBOT_CIRCUIT_THRESHOLD = 1000
    site.contact_emails = "ops@example.com, oncall@example.com"
    site.save()
    webhook = webhook_factory(site=site, url="https://crm.example.com/hooks")
    capture = {"django_capture_on_commit_callbacks": django_capture_on_commit_callbacks}

    for days in (1, 4.9):
        fail_since(webhook, days, **capture)
    assert warnings_of(site, webhook) == [] and mail.outbox == [], "under half way: nothing said yet"
    for days in (5.0, 6.0, 7.5, 7.6, 9.0, 9.5):
        fail_since(webhook, days, **capture)
    fail_since(webhook, 9.6, ok=True, **capture)
    fail_since(webhook, 0, ok=True, **capture)  # a second success is no news

    assert warnings_of(site, webhook) == [
        ("webhook.failing", 50),
        ("webhook.failing", 75),
        ("webhook.failing", 90),
        ("webhook.recovered", None),
    ]
    assert [m.subject for m in mail.outbox] == [
        "[Agentbot] Webhook failing (50% of the way to being disabled): https://crm.example.com/hooks",
        "[Agentbot] Webhook failing (75% of the way to being disabled): https://crm.example.com/hooks",
        "[Agentbot] Webhook failing (90% of the way to being disabled): https://crm.example.com/hooks",
        "[Agentbot] Webhook recovered: https://crm.example.com/hooks",
    ]
    assert all(m.to == ["ops@example.com", "oncall@example.com"] for m in mail.outbox)
    failing = Event.objects.filter(type="webhook.failing").earliest("created_at").data
    assert failing["percent"] == 50 and failing["consecutive_failures"] >= 1 and failing["disables_at"]


def test_a_recovery_through_the_bulk_success_path_is_announced_once(
    site, webhook_factory, settings, eager_tasks, django_capture_on_commit_callbacks
):
    """A batch of nothing but successes takes the one-statement path (bulk.webhooks_succeeded)."""
    settings.AGENTBOT_DISABLE_AFTER_DAYS = 10
    site.contact_emails = "ops@example.com"
    site.save()
    webhook = webhook_factory(site=site)
    fail_since(webhook, 6, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        webhooks_health_record(outcomes=[EndpointAnswer(webhook.id, True, 200, timezone.now()) for _ in range(3)])
        webhooks_health_record(outcomes=[EndpointAnswer(webhook.id, True, 200, timezone.now())])
    assert warnings_of(site, webhook) == [("webhook.failing", 50), ("webhook.recovered", None)]
    assert len(mail.outbox) == 2


def test_disabled_is_announced_and_mailed_without_a_failing_warning_beside_it(
    site, webhook_factory, settings, eager_tasks, django_capture_on_commit_callbacks
):
    settings.AGENTBOT_DISABLE_AFTER_DAYS = 1
    site.contact_emails = "ops@example.com"
    site.save()
    webhook = webhook_factory(site=site)
    fail_since(webhook, 1.5, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    assert warnings_of(site, webhook) == [("webhook.disabled", None)]
    (message,) = mail.outbox
    assert message.subject.startswith("[Agentbot] Webhook disabled")


def test_no_contacts_no_mail(site, webhook_factory, settings, eager_tasks, django_capture_on_commit_callbacks):
    settings.AGENTBOT_DISABLE_AFTER_DAYS = 10
    webhook = webhook_factory(site=site)
    fail_since(webhook, 6, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    assert warnings_of(site, webhook) == [("webhook.failing", 50)] and mail.outbox == []


def test_a_delivery_that_ends_failed_is_announced_as_exhausted_but_not_a_notice_about_one(site, webhook_factory, settings):
    settings.AGENTBOT_RETRY_SCHEDULE = [0]
    webhook = webhook_factory(site=site, url="https://crm.example.com/hooks")
    owner = webhook_factory(site=site, url="https://ops.example.com/hooks", events=["delivery.exhausted"])

    def ended(event_type: str) -> Delivery:
        event = Event.objects.create(site=site, type=event_type, data={})
        delivery = Delivery.objects.create(event=event, webhook=webhook, next_attempt_at=timezone.now(), lease_token="t")
        job = engine.Job(
            delivery_id=delivery.id,
            token="t",
            webhook_id=webhook.id,
            event_id=event.id,
            url=webhook.url,
            format="agentbot",
            event_type=event_type,
            body=b"{}",
            secrets=[webhook.secret],
            attempt_count=0,
            schedule_position=0,
        )
        attempts_record([(job, http.OutboundResult(status_code=503))])
        return Delivery.objects.get(pk=delivery.pk)

    assert ended("ticket.created").status == "failed"
    (exhausted,) = Event.objects.filter(type="delivery.exhausted")
    assert exhausted.data == {
        "delivery_id": exhausted.data["delivery_id"],
        "event_id": exhausted.data["event_id"],
        "event_type": "ticket.created",
        "webhook_id": webhook.id,
        "url": "https://crm.example.com/hooks",
        "attempts": 1,
        "last_status_code": 503,
        "last_error": "HTTP 503",
    }
    assert list(exhausted.deliveries.values_list("webhook_id", flat=True)) == [owner.id], "named only: not to *"
    assert ended("delivery.exhausted").status == "failed"
    announced = [e.data["event_type"] for e in Event.objects.filter(type="delivery.exhausted") if "event_type" in e.data]
    assert announced == ["ticket.created"], "no announcement of an announcement"


def test_site_contacts_are_checked_as_e_mail_addresses(site):
    from django.core.exceptions import ValidationError

    site.contact_emails = "ops@example.com\noncall@example.com; a@b.co"
    site.full_clean()
    assert site.contacts == ["ops@example.com", "oncall@example.com", "a@b.co"]
    site.contact_emails = "ops@example.com, not-an-address"
    with pytest.raises(ValidationError, match="'not-an-address' is not an e-mail address"):
        site.full_clean()
