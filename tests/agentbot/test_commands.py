from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from core.models import ApiKey, Site, hash_api_key
from deliveries.models import Delivery
from deliveries.services.publish import event_publish

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def test_create_api_key_creates_the_site_and_prints_a_working_key(api_client):
    plain = run("create_api_key", "--site", "site_acme")
    assert Site.objects.filter(pk="site_acme").exists()
    key = ApiKey.objects.get(site_id="site_acme")
    assert key.key_hash == hash_api_key(plain) and plain not in key.key_hash
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert api_client.get("/api/v1/webhooks").status_code == 200


def test_create_api_key_refuses_a_bad_site_id():
    with pytest.raises(CommandError, match="site id"):
        run("create_api_key", "--site", "Bad Site!")


def test_send_test_webhook_queues_a_webhook_test_delivery(site, webhook_factory):
    webhook = webhook_factory(site=site, events=["ticket.created"])
    out = run("send_test_webhook", webhook.id)
    delivery = Delivery.objects.get(webhook=webhook)
    assert delivery.event.type == "webhook.test" and delivery.id in out
    with pytest.raises(CommandError, match="no webhook"):
        run("send_test_webhook", "wh_missing")


def test_redeliver_requeues_failed_deliveries_since_a_time(site, webhook_factory):
    webhook = webhook_factory(site=site)
    with transaction.atomic():
        for n in range(3):
            event_publish(site=site, event_type="webhook.test", data={"webhook_id": webhook.id, "n": n}, only_webhook=webhook)
    old, *recent = Delivery.objects.order_by("created_at")
    Delivery.objects.update(status="failed", leased_until=None, lease_token=None, next_attempt_at=None)
    Delivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))

    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "re-queued 2 failed deliveries" in run("redeliver", "--webhook", webhook.id, "--since", since)
    assert set(Delivery.objects.filter(status="pending").values_list("id", flat=True)) == {d.id for d in recent}
    with pytest.raises(CommandError, match="ISO 8601"):
        run("redeliver", "--webhook", webhook.id, "--since", "yesterday")
