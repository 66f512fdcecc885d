"""Webhook channel instances (seed 003) through the REST API and the admin: their settings checked
field by field, their credentials shown once, their URLs."""

from html import unescape

import pytest

from inbound import integrations
from inbound.models import Integration
from tests.support.webhook_channel import rsa_key_pair

pytestmark = pytest.mark.django_db

INTEGRATIONS = "/admin/inbound/integration/"


def create(api, **body):
    return api.post("/api/v1/integrations", {"connector_type": "webhook", "name": "IVR", **body}, format="json")


# --- REST ----------------------------------------------------------------------------------------
def test_create_shows_the_credentials_once_and_the_instance_urls(api, site):
    first = create(api)
    second = create(api, api_version="v1", mode="async", post_url="https://crm.example.com/agent-replies")

    assert first.status_code == 201 and second.status_code == 201, (first.json(), second.json())
    body = first.json()
    instance = Integration.objects.get(pk=body["id"])
    assert body["client_id"] == instance.client_id and body["client_id"].startswith("cs-")
    assert body["client_secret"] == instance.client_secret and len(body["client_secret"]) >= 64
    assert body["post_url_secret"] == instance.reply_webhook.secret
    assert body["webhook_secret"] is None, "Chat2Desk's inbound signing secret means nothing to this channel"
    assert (body["api_version"], body["mode"], body["polling"], body["jwt_algorithm"]) == ("v2", "sync", True, "HS256")
    assert body["webhook_url"] == f"http://testserver/chatbot/hooks/{site.id}"
    later = second.json()
    assert later["webhook_url"] == f"http://testserver/chatbot/hooks/{site.id}/hookInstance/{later['id']}"
    assert Integration.objects.get(pk=later["id"]).reply_webhook.enabled is True

    for response in (api.get("/api/v1/integrations"), api.get(f"/api/v1/integrations/{instance.id}")):
        text = response.content.decode()
        assert instance.client_secret not in text and instance.reply_webhook.secret not in text
        assert "client_secret" not in text and "post_url_secret" not in text


def test_rotate_secret_makes_new_credentials_and_shows_them(api):
    created = create(api, mode="async", post_url="https://crm.example.com/replies").json()
    rotated = api.post(f"/api/v1/integrations/{created['id']}/rotate-secret").json()

    assert rotated["client_secret"] != created["client_secret"]
    assert rotated["post_url_secret"] != created["post_url_secret"]
    instance = Integration.objects.get(pk=created["id"])
    # The old POST_URL secret signs along during the grace period, so receivers can switch.
    assert instance.reply_webhook.previous_secret == created["post_url_secret"]


@pytest.mark.parametrize(
    "body, field, phrase",
    [
        ({"jwt_algorithm": "ES256"}, "jwt_algorithm", "ES256"),
        ({"jwt_algorithm": "RS256"}, "public_key", "set public_key"),
        ({"jwt_algorithm": "RS256", "public_key": "not a key"}, "public_key", "not a PEM public key"),
        ({"mode": "async"}, "post_url", "set post_url"),
        ({"mode": "async", "post_url": "ftp://example.com/x"}, "post_url", ""),
        ({"api_version": "v3"}, "api_version", "v3"),
        ({"polling": "yes"}, "polling", ""),
    ],
)
def test_bad_settings_are_400_naming_the_field(api, body, field, phrase):
    response = create(api, **body)
    assert response.status_code == 400, response.json()
    assert field in response.content.decode() and phrase in response.content.decode()
    assert not Integration.objects.exists()


def test_a_post_url_the_url_policy_refuses_is_400(api, settings):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    response = create(api, mode="async", post_url="http://127.0.0.1:9/replies")
    assert response.status_code == 400 and "post_url" in response.json()["message"] + str(response.json())


def test_an_rs_instance_takes_the_clients_public_key_and_patch_switches_modes(api):
    created = create(api, jwt_algorithm="RS512", public_key=rsa_key_pair()[1])
    assert created.status_code == 201, created.json()
    assert created.json()["public_key"].startswith("-----BEGIN PUBLIC KEY-----")

    url = f"/api/v1/integrations/{created.json()['id']}"
    assert api.patch(url, {"mode": "async"}, format="json").status_code == 400  # no POST_URL yet
    changed = api.patch(url, {"mode": "async", "post_url": "https://crm.example.com/r"}, format="json")
    assert changed.status_code == 200 and changed.json()["mode"] == "async"
    instance = Integration.objects.get(pk=created.json()["id"])
    assert instance.reply_webhook.enabled and instance.reply_webhook.url == "https://crm.example.com/r"
    api.patch(url, {"mode": "sync"}, format="json")
    instance.reply_webhook.refresh_from_db()
    assert not instance.reply_webhook.enabled


def test_webhook_channel_settings_on_another_connector_are_400(api):
    response = api.post("/api/v1/integrations", {"connector_type": "chat2desk", "mode": "async"}, format="json")
    assert response.status_code == 400 and "only a webhook channel instance" in str(response.json())


# --- admin ---------------------------------------------------------------------------------------
def test_admin_adds_an_instance_and_shows_its_credentials_once(admin_client, site):
    form = {
        "name": "IVR",
        "site": site.pk,
        "connector_type": "webhook",
        "active": "on",
        "api_version": "v2",
        "mode": "sync",
        "jwt_algorithm": "HS512",
        "polling": "on",
    }
    response = admin_client.post(f"{INTEGRATIONS}add/", form, follow=True)

    instance = Integration.objects.get()
    assert (instance.jwt_algorithm, instance.client_id[:3]) == ("HS512", "cs-")
    html = unescape(response.content.decode())
    assert html.count(instance.client_secret) == 1 and f"/chatbot/hooks/{site.id}" in html
    change = admin_client.get(f"{INTEGRATIONS}{instance.pk}/change/").content.decode()
    assert instance.client_secret not in change and instance.client_id in change
    listing = admin_client.get(INTEGRATIONS).content.decode()
    assert f"/chatbot/hooks/{site.id}" in listing and instance.client_secret not in listing
    # Its connector webhook (disabled while the instance is synchronous) shows in the webhook admin.
    assert admin_client.get("/admin/subscriptions/webhook/").status_code == 200
    assert admin_client.get(f"/admin/subscriptions/webhook/{instance.reply_webhook_id}/change/").status_code == 200


def test_admin_refuses_async_without_a_post_url_as_a_form_error(admin_client, site):
    instance = integrations.integration_create(site=site, connector_type="webhook")
    form = {"name": "IVR", "active": "on", "api_version": "v2", "mode": "async", "jwt_algorithm": "HS256", "post_url": ""}
    response = admin_client.post(f"{INTEGRATIONS}{instance.pk}/change/", form)

    assert response.status_code == 200 and "set post_url" in unescape(response.content.decode())
    instance.refresh_from_db()
    assert instance.mode == "sync"


def test_admin_refuses_a_new_instance_with_bad_settings_as_a_form_error(admin_client, site):
    form = {
        "name": "IVR",
        "site": site.pk,
        "connector_type": "webhook",
        "active": "on",
        "api_version": "v2",
        "mode": "async",
        "jwt_algorithm": "HS256",
        "post_url": "",
    }
    response = admin_client.post(f"{INTEGRATIONS}add/", form)

    assert response.status_code == 200 and "set post_url" in unescape(response.content.decode())
    assert not Integration.objects.exists()


def test_admin_offers_each_connector_its_own_rotation(admin_client, site):
    instance = integrations.integration_create(site=site, connector_type="webhook")
    chat = integrations.integration_create(site=site, connector_type="webchat", allowed_origins="https://shop.example")
    old_secret = instance.client_secret

    page = admin_client.get(f"{INTEGRATIONS}{instance.pk}/change/").content.decode()
    assert "Rotate credentials" in page and "Rotate webhook secret" not in page and "Registration" not in page
    chat_page = admin_client.get(f"{INTEGRATIONS}{chat.pk}/change/").content.decode()
    assert "Rotate" not in chat_page
    assert admin_client.post(f"{INTEGRATIONS}{chat.pk}/act/rotate_secret/").status_code == 404

    response = admin_client.post(
        INTEGRATIONS, {"action": "rotate_credentials", "_selected_action": [instance.pk, chat.pk]}, follow=True
    )
    html = unescape(response.content.decode())
    instance.refresh_from_db()
    assert instance.client_secret != old_secret and html.count(instance.client_secret) == 1
    assert f"Left alone: {chat}" in html
