"""The admin flows of the core: create a webhook and see its secret once, see deliveries, act."""

import re

import pytest
from django.utils import timezone

from deliveries.models import Attempt, Delivery
from subscriptions.models import Webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(admin_client):
    return admin_client


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_admin_creates_a_webhook_and_sees_the_secret_once(admin, site):
    response = admin.post(
        "/admin/subscriptions/webhook/add/",
        {"site": site.pk, "url": "https://crm.example.com/hook", "events": ["message.created", "ticket.created"],
         "format": "agentbot", "enabled": "on", "description": "CRM"},
        follow=True,
    )
    webhook = Webhook.objects.get()
    assert webhook.events == ["message.created", "ticket.created"]
    (note,) = [m for m in messages_of(response) if "Signing secret" in m]
    assert webhook.secret in note

    page = admin.get(f"/admin/subscriptions/webhook/{webhook.pk}/change/").content.decode()
    assert webhook.secret not in page and webhook.masked_secret in page
    listing = admin.get("/admin/subscriptions/webhook/").content.decode()
    assert webhook.secret not in listing


def test_admin_refuses_a_bad_url_with_a_message(admin, site, settings):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    response = admin.post(
        "/admin/subscriptions/webhook/add/",
        {"site": site.pk, "url": "http://10.0.0.5/hook", "events": ["*"], "format": "agentbot"},
    )
    assert response.status_code == 200 and not Webhook.objects.exists()
    assert "non-public address" in response.content.decode()


def test_webhook_page_lists_recent_deliveries_and_delivery_page_shows_attempts(admin, site, webhook_factory):
    from deliveries.services import webhook_send_test

    webhook = webhook_factory(site=site)
    delivery = webhook_send_test(webhook=webhook).deliveries.get()
    Delivery.objects.filter(pk=delivery.pk).update(status="pending", attempt_count=1, last_status_code=503)
    Attempt.objects.create(delivery=delivery, number=1, at=timezone.now(), status_code=503, response_body="try later", duration_ms=42, error="HTTP 503")

    page = admin.get(f"/admin/subscriptions/webhook/{webhook.pk}/change/").content.decode()
    assert delivery.id in page and "webhook.test" in page and "503" in page
    detail = admin.get(f"/admin/deliveries/delivery/{delivery.pk}/change/").content.decode()
    assert "try later" in detail and "42" in detail and "HTTP 503" in detail


def test_admin_actions_send_a_test_and_retry_a_delivery(admin, site, webhook_factory):
    webhook = webhook_factory(site=site, events=["ticket.created"])
    response = admin.post(
        "/admin/subscriptions/webhook/", {"action": "send_test", "_selected_action": [webhook.pk]}, follow=True
    )
    assert any("webhook.test" in m for m in messages_of(response))
    delivery = Delivery.objects.get(webhook=webhook)

    Delivery.objects.filter(pk=delivery.pk).update(status="failed", leased_until=None, lease_token=None, next_attempt_at=None)
    response = admin.post(
        "/admin/deliveries/delivery/", {"action": "retry", "_selected_action": [delivery.pk]}, follow=True
    )
    assert any("Queued 1 deliveries" in m for m in messages_of(response))
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.next_attempt_at is not None


def test_rotate_action_shows_the_new_secret_once(admin, site, webhook_factory):
    webhook = webhook_factory(site=site)
    old = webhook.secret
    response = admin.post(
        "/admin/subscriptions/webhook/", {"action": "rotate_secret", "_selected_action": [webhook.pk]}, follow=True
    )
    webhook.refresh_from_db()
    assert webhook.secret != old and webhook.previous_secret == old
    (note,) = [m for m in messages_of(response) if "New signing secret" in m]
    assert re.search(re.escape(webhook.secret), note)


def test_disable_and_enable_actions(admin, site, webhook_factory):
    webhook = webhook_factory(site=site)
    admin.post("/admin/subscriptions/webhook/", {"action": "disable", "_selected_action": [webhook.pk]})
    webhook.refresh_from_db()
    assert webhook.enabled is False
    admin.post("/admin/subscriptions/webhook/", {"action": "enable", "_selected_action": [webhook.pk]})
    webhook.refresh_from_db()
    assert webhook.enabled is True
