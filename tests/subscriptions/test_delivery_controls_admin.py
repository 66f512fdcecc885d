"""Delivery controls in the admin: the same checks as the API, secrets write-only, the rate limit's
hold shown, and the filter tried on example data."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from subscriptions.models import Webhook
from tests.subscriptions.test_admin import WEBHOOKS, messages_of, page

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(admin_client):
    return admin_client


def form(site, **controls):
    return {
        "site": site.pk,
        "url": "https://crm.example.com/hook",
        "events": ["message.created"],
        "format": "agentbot",
        "enabled": "on",
        **controls,
    }


def test_admin_sets_headers_basic_auth_filter_and_rate_limit_and_never_shows_the_password(admin, site):
    admin.post(
        f"{WEBHOOKS}add/",
        form(
            site,
            headers=json.dumps({"X-Tenant": "acme"}),
            auth_type="basic",
            auth_username="crm",
            auth_password="pw-not-shown",
            filter=json.dumps({"channel": {"$in": ["whatsapp"]}}),
            rate_limit_count="20",
            rate_limit_period="per_second",
        ),
        follow=True,
    )
    webhook = Webhook.objects.get()
    assert webhook.headers == {"X-Tenant": "acme"} and webhook.auth == {"type": "basic", "username": "crm"}
    assert webhook.auth_secret == "pw-not-shown" and webhook.filter == {"channel": {"$in": ["whatsapp"]}}
    assert webhook.rate_limit == {"per_second": 20}
    change = page(admin, f"{WEBHOOKS}{webhook.pk}/change/")
    assert "pw-not-shown" not in change and "20 per second" in change

    # Saving the page again (password left empty) keeps the password.
    admin.post(
        f"{WEBHOOKS}{webhook.pk}/change/",
        form(site, headers=json.dumps({"X-Tenant": "acme"}), auth_type="basic", auth_username="crm2", rate_limit_count=""),
        follow=True,
    )
    webhook.refresh_from_db()
    assert webhook.auth == {"type": "basic", "username": "crm2"} and webhook.auth_secret == "pw-not-shown"
    assert webhook.rate_limit is None

    Webhook.objects.filter(pk=webhook.pk).update(
        rate_limit={"per_second": 5}, rate_limited_until=timezone.now() + timedelta(seconds=30)
    )
    assert "holding deliveries back" in page(admin, f"{WEBHOOKS}{webhook.pk}/change/")


def test_admin_refuses_a_reserved_header_and_a_bad_filter_at_their_fields(admin, site):
    response = admin.post(
        f"{WEBHOOKS}add/",
        form(site, headers=json.dumps({"X-Agentbot-Signature": "x"}), filter=json.dumps({"a": {"$nope": 1}})),
    )
    assert response.status_code == 200 and not Webhook.objects.exists()
    errors = response.context["adminform"].form.errors
    assert "X-Agentbot-Signature cannot be set" in errors["headers"][0]
    assert "filter.a.$nope: unknown operator" in errors["filter"][0]


def test_admin_filter_test_says_which_webhooks_get_the_example(admin, site, webhook_factory):
    whatsapp = webhook_factory(site=site, filter={"channel": "whatsapp"})
    response = admin.post(
        f"{WEBHOOKS}{whatsapp.pk}/act/filter_test/",
        {"apply": "yes", "data": json.dumps({"channel": "web"}), "_selected_action": [whatsapp.pk]},
    )
    assert response.status_code == 200
    assert "no: filtered out" in response.content.decode()
    assert 'class="breadcrumbs"' in response.content.decode() and f'href="{WEBHOOKS}"' in response.content.decode()
    response = admin.post(
        f"{WEBHOOKS}{whatsapp.pk}/act/filter_test/", {"apply": "yes", "data": json.dumps({"channel": "whatsapp"})}
    )
    assert "no: filtered out" not in response.content.decode() and "yes" in response.content.decode()
    assert messages_of(response) == []
