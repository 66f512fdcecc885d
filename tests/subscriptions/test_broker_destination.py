"""A webhook whose URL is a RabbitMQ broker's: what the API and the admin take and refuse, and
that its password is stored encrypted and never shown again."""

import pytest
from django.db import connection

from subscriptions.models import Webhook

pytestmark = pytest.mark.django_db

PASSWORD = "Br0ker-s3cret-pw"
URL = f"amqps://agentbot:{PASSWORD}@rabbit.example.com:5671/crm"
WEBHOOKS = "/admin/subscriptions/webhook/"


def create(api, **fields):
    body = {"url": URL, "events": ["*"], "exchange": "agentbot.events", **fields}
    return api.post("/api/v1/webhooks", body, format="json")


def raw_row(webhook_id: str) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT url, broker_password FROM subscriptions_webhook WHERE id = %s", [webhook_id])
        return cursor.fetchone()


def test_a_broker_webhook_is_created_with_its_exchange_and_routing_key_and_shown_as_a_hint(api):
    created = create(api, routing_key="crm.agentbot", format="standard")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["url"] == "amqps://rabbit.example.com:5671/…"
    assert (body["exchange"], body["routing_key"], body["format"]) == ("agentbot.events", "crm.agentbot", "standard")
    shown = api.get(f"/api/v1/webhooks/{body['id']}").content.decode() + api.get("/api/v1/webhooks").content.decode()
    assert PASSWORD not in created.content.decode() + shown and "agentbot:" not in shown


def test_the_password_is_stored_encrypted_and_apart_from_the_url(api):
    webhook_id = create(api).json()["id"]
    url, password = raw_row(webhook_id)
    assert url == "amqps://agentbot:****@rabbit.example.com:5671/crm"
    assert PASSWORD not in password and password.startswith("gAAAA")  # Fernet
    webhook = Webhook.objects.get(pk=webhook_id)
    assert webhook.broker_password == PASSWORD and webhook.routing_key == ""


def test_a_new_url_with_the_password_written_as_stars_keeps_the_stored_password(api):
    webhook_id = create(api).json()["id"]
    changed = api.patch(f"/api/v1/webhooks/{webhook_id}", {"url": "amqps://agentbot:****@rabbit2.example.com/crm"}, format="json")
    assert changed.status_code == 200, changed.json()
    webhook = Webhook.objects.get(pk=webhook_id)
    assert webhook.url == "amqps://agentbot:****@rabbit2.example.com/crm" and webhook.broker_password == PASSWORD
    assert api.patch(f"/api/v1/webhooks/{webhook_id}", {"routing_key": "x.y"}, format="json").status_code == 200
    assert Webhook.objects.get(pk=webhook_id).broker_password == PASSWORD


def test_moving_a_broker_webhook_to_http_drops_its_broker_fields(api):
    webhook_id = create(api).json()["id"]
    changed = api.patch(f"/api/v1/webhooks/{webhook_id}", {"url": "https://crm.example.com/hooks"}, format="json")
    assert changed.status_code == 200, changed.json()
    webhook = Webhook.objects.get(pk=webhook_id)
    assert (webhook.exchange, webhook.routing_key, webhook.broker_password) == ("", "", "")


@pytest.mark.parametrize(
    "overrides, field, phrase",
    [
        ({"url": "amqp://rabbit.example.com/crm"}, "url", "must carry a user name and a password"),
        ({"url": "amqp://agentbot@rabbit.example.com/crm"}, "url", "must carry a user name and a password"),
        ({"url": "amqp://u:p@rabbit.example.com/crm?heartbeat=5"}, "url", "must not have a query"),
        ({"url": "amqp://u:p@rabbit.example.com/a/b"}, "url", "one segment"),
        ({"url": "amqp://u:p@rabbit.example.com:99999/"}, "url", "Port out of range"),
        ({"url": "amqp://u:p@/crm"}, "url", "must name a host"),
        ({"url": "amqp://u:****@rabbit.example.com/"}, "url", "there is none"),
        ({"url": "ftp://example.com/x"}, "url", "amqp:// or amqps://"),
        ({"exchange": "bad exchange!"}, "exchange", "at most 127 letters"),
        ({"exchange": "x" * 128}, "exchange", "at most 127"),
        ({"exchange": 5}, "exchange", "must be a JSON string"),
        ({"routing_key": "a\nb"}, "routing_key", "control characters"),
        ({"format": "leads"}, "format", "cannot go to a message broker"),
        ({"format": "slack"}, "format", "cannot go to a message broker"),
        ({"url": "https://crm.example.com/hooks"}, "exchange", "amqp:// and amqps:// URLs only"),
    ],
)
def test_bad_broker_input_gets_a_400_naming_the_field(api, overrides, field, phrase):
    response = create(api, **overrides)
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body["fields"], body
    assert phrase in body["message"], body
    assert "p@" not in body["message"] and PASSWORD not in response.content.decode()


def test_a_private_broker_is_refused_when_private_urls_are_off(api, settings):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    response = create(api, url="amqp://guest:guest@127.0.0.1:5672/")
    assert response.status_code == 400
    assert "non-public address" in response.json()["message"]


def test_the_admin_takes_a_broker_webhook_and_never_shows_its_password(admin_client, site):
    created = admin_client.post(
        f"{WEBHOOKS}add/",
        {
            "site": site.pk,
            "url": URL,
            "exchange": "agentbot.events",
            "routing_key": "",
            "events": ["*"],
            "format": "agentbot",
            "enabled": "on",
            "description": "",
        },
        follow=True,
    )
    webhook = Webhook.objects.get()
    assert webhook.broker_password == PASSWORD and webhook.exchange == "agentbot.events"
    change = admin_client.get(f"{WEBHOOKS}{webhook.pk}/change/").content.decode()
    listed = admin_client.get(WEBHOOKS).content.decode()
    for page in (created.content.decode(), change, listed):
        assert PASSWORD not in page
    assert "amqps://rabbit.example.com:5671/…" in listed

    # Saved again with the URL left empty: the URL and its password stay.
    kept = admin_client.post(
        f"{WEBHOOKS}{webhook.pk}/change/",
        {
            "url": "",
            "exchange": "agentbot.events",
            "routing_key": "crm",
            "events": ["*"],
            "format": "agentbot",
            "enabled": "on",
            "description": "",
        },
    )
    assert kept.status_code == 302, kept.content.decode()[:2000]
    webhook.refresh_from_db()
    assert (webhook.broker_password, webhook.routing_key) == (PASSWORD, "crm")


@pytest.mark.parametrize(
    "fields, field, phrase",
    [
        ({"url": "amqp://rabbit.example.com/"}, "url", "user name and a password"),
        ({"exchange": "no spaces please"}, "exchange", "at most 127 letters"),
        ({"format": "leads"}, "format", "cannot go to a message broker"),
    ],
)
def test_the_admin_shows_a_bad_broker_webhook_as_a_form_error(admin_client, site, fields, field, phrase):
    data = {
        "site": site.pk,
        "url": URL,
        "exchange": "agentbot.events",
        "routing_key": "",
        "events": ["*"],
        "format": "agentbot",
        "enabled": "on",
        "description": "",
        **fields,
    }
    response = admin_client.post(f"{WEBHOOKS}add/", data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors and phrase in " ".join(errors[field]), errors
    assert not Webhook.objects.exists()
