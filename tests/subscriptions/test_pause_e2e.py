"""Seed 002: "toggle Enabled off to pause delivery without losing the config"."""

import time

import pytest
from django.db import transaction

from deliveries.models import Delivery
from deliveries.services.publish import event_publish
from subscriptions.models import Webhook
from tests.support.receiver import fail_times

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def publish(site, n: int) -> str:
    with transaction.atomic():
        event, _ = event_publish(site=site, event_type="message.created", data={"n": n})
    return event.deliveries.get().id


def wait_for(check, timeout: float = 30.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_paused_webhook_keeps_its_deliveries_waiting_and_sends_them_in_order_when_enabled(
    site, api, admin_client, webhook_factory, receiver, workers
):
    webhook = webhook_factory(site=site, url=receiver.url, events=["message.created"])
    receiver.responder = fail_times(1)  # the first attempt fails: that delivery waits for a retry
    workers.start(AGENTBOT_RETRY_SCHEDULE="0,2,2", AGENTBOT_WEBHOOK_CONCURRENCY="1")
    retrying = publish(site, 0)
    wait_for(lambda: Delivery.objects.get(pk=retrying).attempt_count == 1, what="the first attempt")

    assert api.patch(f"/api/v1/webhooks/{webhook.id}", {"enabled": False}, format="json").status_code == 200
    waiting = [publish(site, n) for n in (1, 2, 3)]
    time.sleep(4)  # two retry steps and eight sweeps: nothing may go out meanwhile
    assert len(receiver.received) == 1
    for delivery in Delivery.objects.filter(pk__in=[retrying, *waiting]):
        assert delivery.status == "pending", delivery.id
    assert Delivery.objects.get(pk=retrying).attempt_count == 1
    assert all(Delivery.objects.get(pk=d).attempt_count == 0 for d in waiting)

    shown = api.get(f"/api/v1/webhooks/{webhook.id}").json()
    assert (shown["enabled"], shown["state"], shown["waiting_deliveries"]) == (False, "paused", 4)
    page = admin_client.get("/admin/subscriptions/webhook/").content.decode()
    assert "paused" in page and "4 deliveries waiting" in page

    assert api.patch(f"/api/v1/webhooks/{webhook.id}", {"enabled": True}, format="json").status_code == 200
    received = receiver.wait_for(5)
    assert [r.headers["x-agentbot-delivery-id"] for r in received[1:]] == [retrying, *waiting]
    wait_for(lambda: Delivery.objects.filter(pk__in=[retrying, *waiting], status="succeeded").count() == 4, what="success")
    shown = api.get(f"/api/v1/webhooks/{webhook.id}").json()
    assert (shown["state"], shown["waiting_deliveries"]) == ("active", None)


def test_a_webhook_the_service_disabled_gets_no_new_deliveries_and_its_waiting_ones_fail(
    site, api, webhook_factory, receiver, workers
):
    webhook = webhook_factory(site=site, url=receiver.url, events=["message.created"])
    receiver.responder = lambda n: (410, b"gone")
    workers.start()
    first = publish(site, 0)
    wait_for(lambda: Delivery.objects.get(pk=first).status == "failed", what="the 410 to end the delivery")
    # Endpoint health is folded in its own transaction, right after the attempt is stored.
    wait_for(lambda: "410" in Webhook.objects.get(pk=webhook.pk).disabled_reason, what="the 410 to disable it")
    webhook.refresh_from_db()
    assert not webhook.enabled
    assert api.get(f"/api/v1/webhooks/{webhook.id}").json()["state"] == "disabled"
    with transaction.atomic():
        event, _ = event_publish(site=site, event_type="message.created", data={"n": 1})
    assert not event.deliveries.exists()
