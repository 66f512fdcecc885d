"""A chat platform's incoming-webhook URL is its credential: written once, then shown only as a hint,
in the API, the admin, and the events that name a webhook."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from deliveries.engine import endpoint_health
from deliveries.models import Event
from deliveries.services.operator import webhook_send_test
from deliveries.services.send import webhooks_health_record
from subscriptions.models import Webhook, url_hint

pytestmark = pytest.mark.django_db

SLACK_URL = "https://hooks.slack.com/services/T0001/B0001/XXXXXXXXXXXXXXXXsEcR"
NEW_SLACK_URL = "https://hooks.slack.com/services/T0001/B0002/YYYYYYYYYYYYYYYYnEwW"
WEBHOOKS = "/admin/subscriptions/webhook/"


@pytest.mark.parametrize(
    "url, hint",
    [
        (SLACK_URL, "https://hooks.slack.com/…sEcR"),
        ("https://discord.com/api/webhooks/1234567890/abcdefTOKEN9z?wait=true", "https://discord.com/…true"),
        (
            "https://prod-01.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=Zx9q",
            "https://prod-01.westus.logic.azure.com:443/…Zx9q",
        ),
        ("amqp://agent:s3cret-pass@rabbit.internal:5672/agentbot-vhost", "amqp://rabbit.internal:5672/…host"),
        ("https://x.example/ab", "https://x.example/…"),  # too short to show any of it
        ("not a url", "…"),
    ],
)
def test_url_hint_shows_scheme_host_and_the_last_characters_only(url, hint):
    assert url_hint(url) == hint
    assert "s3cret" not in url_hint(url) and "agent:" not in url_hint(url)


def test_a_password_in_the_url_makes_it_a_credential_whatever_the_format():
    webhook = Webhook(url="amqp://agent:pw@rabbit:5672/vhost", format="agentbot")
    assert webhook.url_is_credential and webhook.displayed_url == "amqp://rabbit:5672/…"
    assert not Webhook(url="https://crm.example.com/hooks", format="agentbot").url_is_credential


def test_the_api_never_shows_a_chat_webhook_url_back_and_still_takes_a_new_one(api):
    created = api.post("/api/v1/webhooks", {"url": SLACK_URL, "events": ["*"], "format": "slack"}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["url"] == "https://hooks.slack.com/…sEcR" and body["format"] == "slack"
    shown = api.get(f"/api/v1/webhooks/{body['id']}")
    listed = api.get("/api/v1/webhooks")
    assert SLACK_URL not in created.content.decode() + shown.content.decode() + listed.content.decode()

    changed = api.patch(f"/api/v1/webhooks/{body['id']}", {"url": NEW_SLACK_URL}, format="json")
    assert changed.status_code == 200 and changed.json()["url"] == "https://hooks.slack.com/…nEwW"
    assert Webhook.objects.get(pk=body["id"]).url == NEW_SLACK_URL


def test_the_api_shows_other_formats_urls_whole(api):
    body = api.post("/api/v1/webhooks", {"url": "https://crm.example.com/hooks", "events": ["*"]}, format="json").json()
    assert body["url"] == "https://crm.example.com/hooks"
    assert api.get(f"/api/v1/webhooks/{body['id']}").json()["url"] == "https://crm.example.com/hooks"


def test_the_admin_shows_only_the_hint_keeps_the_url_when_left_empty_and_takes_a_new_one(admin_client, site, webhook_factory):
    created = admin_client.post(
        f"{WEBHOOKS}add/",
        {"site": site.pk, "url": SLACK_URL, "events": ["*"], "format": "slack", "enabled": "on", "description": ""},
        follow=True,
    )
    webhook = Webhook.objects.get()
    assert webhook.url == SLACK_URL
    assert not [str(m) for m in created.context["messages"] if "Signing secret" in str(m)], "nothing is signed"
    change = admin_client.get(f"{WEBHOOKS}{webhook.pk}/change/").content.decode()
    listed = admin_client.get(WEBHOOKS).content.decode()
    delivery = webhook_send_test(webhook=webhook).deliveries.get()
    request_page = admin_client.get(f"/admin/deliveries/delivery/{delivery.pk}/change/").content.decode()
    for page in (created.content.decode(), change, listed, request_page):
        assert SLACK_URL not in page and "XXXXXXXXXXXXXXXX" not in page
    assert "https://hooks.slack.com/…sEcR" in change and "https://hooks.slack.com/…sEcR" in listed

    form = {"events": ["*"], "format": "slack", "enabled": "on", "description": "sales channel"}
    assert admin_client.post(f"{WEBHOOKS}{webhook.pk}/change/", {**form, "url": ""}).status_code == 302
    webhook.refresh_from_db()
    assert webhook.url == SLACK_URL and webhook.description == "sales channel"
    assert admin_client.post(f"{WEBHOOKS}{webhook.pk}/change/", {**form, "url": NEW_SLACK_URL}).status_code == 302
    webhook.refresh_from_db()
    assert webhook.url == NEW_SLACK_URL


def test_the_webhook_page_previews_what_its_test_event_posts(admin_client, site, webhook_factory):
    slack = webhook_factory(site=site, url=SLACK_URL, format="slack")
    agentbot = webhook_factory(site=site, url="https://crm.example.com/hooks")
    slack_page = admin_client.get(f"{WEBHOOKS}{slack.pk}/change/").content.decode()
    assert 'id="test-preview"' in slack_page
    assert "the channel shows it as <strong>Test event from Agentbot</strong>" in slack_page
    assert "&quot;blocks&quot;" in slack_page and "This is a test event from Agentbot." in slack_page
    agentbot_page = admin_client.get(f"{WEBHOOKS}{agentbot.pk}/change/").content.decode()
    assert "&quot;event&quot;: &quot;webhook.test&quot;" in agentbot_page


def test_a_disabled_chat_webhook_is_named_by_its_hint_in_the_event_its_owner_gets(site, webhook_factory):
    slack = webhook_factory(site=site, url=SLACK_URL, format="slack", events=["message.created"])
    webhook_factory(site=site, url="https://owner.example.com/h", events=["webhook.disabled"])
    webhooks_health_record(outcomes=[endpoint_health.EndpointAnswer(slack.id, False, 410, timezone.now())])
    event = Event.objects.get(type="webhook.disabled")
    assert event.data["url"] == "https://hooks.slack.com/…sEcR" and SLACK_URL not in str(event.data)


def test_send_test_webhook_names_a_chat_webhook_by_its_hint(site, webhook_factory):
    out = StringIO()
    call_command("send_test_webhook", webhook_factory(site=site, url=SLACK_URL, format="slack").id, stdout=out)
    assert "https://hooks.slack.com/…sEcR" in out.getvalue() and SLACK_URL not in out.getvalue()


def test_the_admin_searches_never_match_inside_a_credential_url(admin_client, site, webhook_factory):
    """A search by a piece of a URL would read a chat webhook's token out one guess at a time: the
    webhook list and the delivery log match other webhooks' URLs, never a credential URL."""
    slack = webhook_factory(site=site, url=SLACK_URL, format="slack")
    crm = webhook_factory(site=site, url="https://crm.example.com/XXXXXXXXsEcR")
    for webhook in (slack, crm):
        webhook_send_test(webhook=webhook)
    listed = admin_client.get(WEBHOOKS, {"q": "XXXXXXXXsEcR"}).content.decode()
    assert "crm.example.com" in listed and "hooks.slack.com" not in listed
    assert "hooks.slack.com" not in admin_client.get(WEBHOOKS, {"q": "B0001/XXXX"}).content.decode()
    assert "hooks.slack.com" in admin_client.get(WEBHOOKS, {"q": slack.id}).content.decode(), "its id still finds it"
    log = admin_client.get("/admin/deliveries/delivery/", {"q": "sEcR"}).content.decode()
    assert crm.id in log and slack.id not in log
