"""The inbound REST API: integrations, the knowledge base, what integrations delivered, and how the
connector webhooks stay out of the subscriber API."""

import json

import pytest
from django.test import Client

from deliveries.models import Delivery
from domain import services as domain
from inbound.models import InboundEvent, Integration, KnowledgeEntry
from subscriptions.models import Webhook
from tests.conftest import client_for
from tests.factories import SiteFactory
from tests.inbound.conftest import post_webhook

pytestmark = pytest.mark.django_db

API_URL = "https://api.chat2desk.com"
TOKEN = "c2d-secret-token-5f1e"


def create(api, **body):
    return api.post("/api/v1/integrations", {"name": "Support", **body}, format="json")


def assert_no_token(response) -> None:
    """The API token is write-only: neither its field nor its value is in any answer."""
    assert '"api_token"' not in response.content.decode()
    assert TOKEN not in response.content.decode()


# --- integrations -------------------------------------------------------------------------------
def test_create_shows_the_webhook_secret_once_and_never_the_token(api, site):
    response = create(api, api_url=API_URL, api_token=TOKEN)

    assert response.status_code == 201, response.json()
    body = response.json()
    integration = Integration.objects.get(pk=body["id"])
    assert body["webhook_secret"] == integration.webhook_secret
    assert body["connector_type"] == "chat2desk" and body["active"] is True
    assert body["api_url"] == API_URL and body["api_token_set"] is True
    assert body["webhook_url"] == f"http://testserver/api/webhook/chat2desk/{integration.id}"
    assert body["webhook_registered"] is False and body["webhook_registered_at"] is None
    assert integration.site == site and integration.api_token == TOKEN
    assert_no_token(response)

    for later in (api.get(f"/api/v1/integrations/{integration.id}"), api.get("/api/v1/integrations")):
        assert later.status_code == 200
        assert "webhook_secret" not in later.content.decode() and integration.webhook_secret not in later.content.decode()
        assert_no_token(later)
    assert api.get("/api/v1/integrations").json()["results"][0]["id"] == integration.id


def test_the_public_url_setting_makes_the_webhook_url(api, settings):
    settings.AGENTBOT_PUBLIC_URL = "https://agent.example.com"
    body = create(api).json()
    assert body["webhook_url"] == f"https://agent.example.com/api/webhook/chat2desk/{body['id']}"


def test_a_webchat_integration_can_be_created(api):
    response = create(api, connector_type="webchat")
    assert response.status_code == 201 and response.json()["connector_type"] == "webchat"
    assert response.json()["reply_webhook_id"] is None


def test_the_limit_on_allowed_origins_counts_origins_not_characters(api):
    long_origin = "https://" + "shop-" * 20 + "example.com"  # 119 characters, one origin
    response = create(api, connector_type="webchat", allowed_origins=[long_origin])
    assert response.status_code == 201, response.json()
    assert response.json()["allowed_origins"] == [long_origin]

    many = [f"https://shop{n}.example" for n in range(101)]
    refused = create(api, connector_type="webchat", allowed_origins=many)
    assert refused.status_code == 400
    assert refused.json()["fields"]["allowed_origins"] == ["Ensure this field has no more than 100 elements."]


@pytest.mark.parametrize(
    "body, phrase",
    [
        ({"api_url": "not a url"}, "api_url: "),
        ({"api_url": "ftp://api.chat2desk.com"}, "api_url: "),
        ({"api_url": 42}, "api_url: "),
        ({"connector_type": "telegram"}, "connector_type: "),
        ({"active": "yes"}, "active: "),
        ({"name": "x" * 201}, "name: "),
        ({"api_token": ["t"]}, "api_token: "),
        ({"webhook_secret": "mine"}, "webhook_secret: unknown field"),
        ({"apiUrl": API_URL}, "apiUrl: unknown field"),
    ],
)
def test_bad_integration_input_is_400_naming_the_field(api, body, phrase):
    response = create(api, **body)
    assert response.status_code == 400, response.content
    assert response.json()["message"].startswith(phrase), response.json()
    assert not Integration.objects.exists()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://10.0.0.5/api", "http://localhost:9000"])
def test_a_private_api_url_is_refused_when_private_urls_are_not_allowed(api, settings, url):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    response = create(api, api_url=url, api_token=TOKEN)
    assert response.status_code == 400 and response.json()["message"].startswith("api_url: ")
    assert not Integration.objects.exists() and not Webhook.objects.exists()


def test_the_reply_webhook_follows_the_integration(api):
    body = create(api, api_url=API_URL + "/", api_token=TOKEN).json()
    integration_id = body["id"]
    assert body["api_url"] == API_URL, "the trailing slash is dropped"

    def reply_webhook() -> Webhook:
        return Integration.objects.get(pk=integration_id).reply_webhook

    webhook = reply_webhook()
    assert body["reply_webhook_id"] == webhook.id
    assert (webhook.url, webhook.secret, webhook.format, webhook.connector, webhook.enabled) == (
        f"{API_URL}/v1/messages",
        TOKEN,
        "chat2desk",
        "chat2desk",
        True,
    )

    def patch(**changes):
        response = api.patch(f"/api/v1/integrations/{integration_id}", changes, format="json")
        assert response.status_code == 200, response.json()
        assert_no_token(response)
        return response.json()

    assert patch(api_url="https://api.chat2desk.eu")["api_url"] == "https://api.chat2desk.eu"
    assert reply_webhook().url == "https://api.chat2desk.eu/v1/messages" and reply_webhook().id == webhook.id

    patch(active=False)
    assert reply_webhook().enabled is False and "inactive" in reply_webhook().disabled_reason
    patch(active=True)
    assert reply_webhook().enabled is True and reply_webhook().disabled_reason == ""

    assert patch(api_token="")["api_token_set"] is False
    assert reply_webhook().enabled is False and "API token" in reply_webhook().disabled_reason
    patch(api_token="a-new-token")
    assert (reply_webhook().enabled, reply_webhook().secret) == (True, "a-new-token")
    assert Webhook.objects.count() == 1, "the same connector webhook is kept up to date"


def test_adding_the_api_url_and_token_later_makes_the_reply_webhook(api):
    integration_id = create(api).json()["id"]
    assert Integration.objects.get(pk=integration_id).reply_webhook is None

    response = api.patch(f"/api/v1/integrations/{integration_id}", {"api_url": API_URL, "api_token": TOKEN}, format="json")

    assert response.status_code == 200
    webhook = Integration.objects.get(pk=integration_id).reply_webhook
    assert webhook.url == f"{API_URL}/v1/messages" and webhook.enabled
    assert response.json()["reply_webhook_id"] == webhook.id


@pytest.mark.parametrize(
    "body, phrase",
    [
        ({}, "send at least one of"),
        ({"connector_type": "webchat"}, "connector_type: unknown field"),
        ({"webhook_secret": "x"}, "webhook_secret: unknown field"),
        ({"api_url": "javascript:alert(1)"}, "api_url: "),
        ({"active": None}, "active: "),
    ],
)
def test_bad_patches_are_400_and_change_nothing(api, body, phrase):
    integration_id = create(api, api_url=API_URL, api_token=TOKEN).json()["id"]
    before = Integration.objects.get(pk=integration_id)

    response = api.patch(f"/api/v1/integrations/{integration_id}", body, format="json")

    assert response.status_code == 400, response.content
    assert phrase in response.json()["message"]
    after = Integration.objects.get(pk=integration_id)
    assert (after.connector_type, after.api_url, after.active, after.webhook_secret) == (
        before.connector_type,
        before.api_url,
        before.active,
        before.webhook_secret,
    )


def test_a_body_that_is_not_json_is_a_4xx_json_error(api):
    response = api.post("/api/v1/integrations", data="{broken", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "parse_error"
    response = api.post("/api/v1/integrations", data="name=x", content_type="text/plain")
    assert response.status_code == 415 and response.json()["error"] == "unsupported_media_type"


def test_rotate_secret_makes_the_old_secret_fail_at_the_webhook(api):
    created = create(api).json()
    integration = Integration.objects.get(pk=created["id"])
    webhook = Client()
    message = {"text": "Hi", "client_id": "1"}
    assert post_webhook(webhook, integration, message).status_code == 200

    rotated = api.post(f"/api/v1/integrations/{integration.id}/rotate-secret")

    assert rotated.status_code == 200
    new_secret = rotated.json()["webhook_secret"]
    assert new_secret != created["webhook_secret"]
    refused = post_webhook(webhook, integration, {**message, "text": "again"}, secret=created["webhook_secret"])
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_signature"
    assert post_webhook(webhook, integration, {**message, "text": "new"}, secret=new_secret).status_code == 200
    assert InboundEvent.objects.filter(integration=integration).count() == 2


def test_delete_removes_the_integration_its_reply_webhook_and_its_events(api):
    integration_id = create(api, api_url=API_URL, api_token=TOKEN).json()["id"]
    integration = Integration.objects.get(pk=integration_id)
    assert post_webhook(Client(), integration, {"text": "Hi", "client_id": "1"}).status_code == 200

    response = api.delete(f"/api/v1/integrations/{integration_id}")

    assert response.status_code == 204
    assert api.get(f"/api/v1/integrations/{integration_id}").status_code == 404
    assert api.delete(f"/api/v1/integrations/{integration_id}").status_code == 404
    assert not Webhook.objects.exists() and not InboundEvent.objects.exists()
    gone = Client().get(f"/api/webhook/chat2desk/{integration_id}")
    assert gone.status_code == 404


def test_every_integration_route_needs_an_api_key(api_client, api):
    integration_id = create(api).json()["id"]
    for method, url in [
        ("get", "/api/v1/integrations"),
        ("post", "/api/v1/integrations"),
        ("get", f"/api/v1/integrations/{integration_id}"),
        ("patch", f"/api/v1/integrations/{integration_id}"),
        ("delete", f"/api/v1/integrations/{integration_id}"),
        ("post", f"/api/v1/integrations/{integration_id}/rotate-secret"),
        ("get", f"/api/v1/integrations/{integration_id}/inbound-events"),
        ("get", "/api/v1/knowledge"),
        ("post", "/api/v1/knowledge"),
    ]:
        response = getattr(api_client, method)(url, {}, format="json")
        assert response.status_code == 401, f"{method.upper()} {url}"
        assert response.json()["error"] == "not_authenticated"
    assert Integration.objects.filter(pk=integration_id).exists()


def test_another_sites_key_gets_404_on_every_integration_and_knowledge_route(api, site):
    integration_id = create(api, api_url=API_URL, api_token=TOKEN).json()["id"]
    entry_id = api.post("/api/v1/knowledge", {"question": "Q?", "answer": "A."}, format="json").json()["id"]
    stranger = client_for(SiteFactory())

    for method, url, body in [
        ("get", f"/api/v1/integrations/{integration_id}", None),
        ("patch", f"/api/v1/integrations/{integration_id}", {"name": "Mine now"}),
        ("delete", f"/api/v1/integrations/{integration_id}", None),
        ("post", f"/api/v1/integrations/{integration_id}/rotate-secret", None),
        ("post", f"/api/v1/integrations/{integration_id}/register-webhook", None),
        ("post", f"/api/integrations/{integration_id}/register-webhook", None),
        ("get", f"/api/v1/integrations/{integration_id}/inbound-events", None),
        ("get", f"/api/v1/knowledge/{entry_id}", None),
        ("patch", f"/api/v1/knowledge/{entry_id}", {"answer": "Mine now"}),
        ("delete", f"/api/v1/knowledge/{entry_id}", None),
    ]:
        response = getattr(stranger, method)(url, body, format="json")
        assert response.status_code == 404, f"{method.upper()} {url}: {response.status_code}"
        assert response.json()["error"] == "not_found"

    assert stranger.get("/api/v1/integrations").json()["count"] == 0
    assert stranger.get("/api/v1/knowledge").json()["count"] == 0
    integration = Integration.objects.get(pk=integration_id)
    assert (integration.name, integration.site_id) == ("Support", site.id)
    assert KnowledgeEntry.objects.get(pk=entry_id).answer == "A."


# --- the knowledge base -------------------------------------------------------------------------
def test_knowledge_entries_can_be_added_listed_changed_and_deleted(api, site):
    created = api.post(
        "/api/v1/knowledge",
        {"question": "Qual o horário de funcionamento?", "answer": "Das 9h às 18h.", "keywords": "horário, aberto"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    entry = created.json()
    assert (entry["question"], entry["answer"], entry["keywords"], entry["enabled"]) == (
        "Qual o horário de funcionamento?",
        "Das 9h às 18h.",
        "horário, aberto",
        True,
    )
    assert KnowledgeEntry.objects.get(pk=entry["id"]).site == site
    api.post("/api/v1/knowledge", {"question": "Do you deliver?", "answer": "Yes."}, format="json")

    listed = api.get("/api/v1/knowledge").json()
    assert [e["question"] for e in listed["results"]] == ["Do you deliver?", "Qual o horário de funcionamento?"]

    changed = api.patch(f"/api/v1/knowledge/{entry['id']}", {"enabled": False, "answer": "Das 8h às 17h."}, format="json")
    assert changed.status_code == 200
    assert (changed.json()["enabled"], changed.json()["answer"]) == (False, "Das 8h às 17h.")
    assert api.get(f"/api/v1/knowledge/{entry['id']}").json()["answer"] == "Das 8h às 17h."

    assert api.delete(f"/api/v1/knowledge/{entry['id']}").status_code == 204
    assert api.get(f"/api/v1/knowledge/{entry['id']}").status_code == 404
    assert api.get("/api/v1/knowledge").json()["count"] == 1


@pytest.mark.parametrize(
    "body, phrase",
    [
        ({"answer": "A."}, "question: This field is required"),
        ({"question": "Q?"}, "answer: This field is required"),
        ({"question": "", "answer": "A."}, "question: "),
        ({"question": "Q?", "answer": "A.", "enabled": "false"}, "enabled: "),
        ({"question": "Q?", "answer": 5}, "answer: "),
        ({"question": "Q?", "answer": "A.", "tags": ["x"]}, "tags: unknown field"),
        ({"question": "Q\u0000?", "answer": "A."}, "question: "),
    ],
)
def test_bad_knowledge_input_is_400_naming_the_field(api, body, phrase):
    response = api.post("/api/v1/knowledge", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["message"].startswith(phrase), response.json()
    assert not KnowledgeEntry.objects.exists()


def test_an_empty_knowledge_patch_is_400(api):
    entry_id = api.post("/api/v1/knowledge", {"question": "Q?", "answer": "A."}, format="json").json()["id"]
    response = api.patch(f"/api/v1/knowledge/{entry_id}", {}, format="json")
    assert response.status_code == 400 and "send at least one of" in response.json()["message"]


# --- what integrations delivered ----------------------------------------------------------------
def test_inbound_events_list_what_the_platform_sent_newest_first(api):
    integration = Integration.objects.get(pk=create(api).json()["id"])
    other = Integration.objects.get(pk=create(api, name="Other").json()["id"])
    client = Client()
    post_webhook(client, integration, {"text": "Hello", "client_id": "7", "message_id": 1})
    post_webhook(client, integration, {"hook_type": "close_dialog", "request_id": 3})
    post_webhook(client, integration, {"hook_type": "something_new"})
    post_webhook(client, other, {"text": "Elsewhere", "client_id": "8"})

    response = api.get(f"/api/v1/integrations/{integration.id}/inbound-events")

    assert response.status_code == 200
    listed = response.json()
    assert listed["count"] == 3
    assert [e["status"] for e in listed["results"]] == ["ignored", "received", "received"]
    assert [e["kind"] for e in listed["results"][1:]] == ["status", "message"]
    message = listed["results"][2]
    assert message["payload"] == {"text": "Hello", "client_id": "7"} and message["external_id"] == "1"
    assert message["integration_id"] == integration.id and message["conversation_id"] is None
    assert "something_new" in listed["results"][0]["outcome"]


# --- connector webhooks are not subscriber webhooks ---------------------------------------------
def test_connector_webhooks_stay_out_of_the_webhooks_api(api, site, webhook_factory):
    subscriber = webhook_factory(site=site)
    integration_id = create(api, api_url=API_URL, api_token=TOKEN).json()["id"]
    connector = Integration.objects.get(pk=integration_id).reply_webhook

    listed = api.get("/api/v1/webhooks").json()

    assert [w["id"] for w in listed["results"]] == [subscriber.id]
    for method, url in [
        ("get", f"/api/v1/webhooks/{connector.id}"),
        ("patch", f"/api/v1/webhooks/{connector.id}"),
        ("delete", f"/api/v1/webhooks/{connector.id}"),
        ("post", f"/api/v1/webhooks/{connector.id}/rotate-secret"),
        ("post", f"/api/v1/webhooks/{connector.id}/test"),
        ("get", f"/api/v1/webhooks/{connector.id}/deliveries"),
    ]:
        response = getattr(api, method)(url, {"enabled": True} if method == "patch" else {}, format="json")
        assert response.status_code == 404, f"{method.upper()} {url}: {response.status_code}"
    connector.refresh_from_db()
    assert connector.secret == TOKEN and connector.enabled


@pytest.mark.parametrize("event", ["message.created", "webhook.test"])
def test_published_events_never_reach_a_connector_webhook(api, site, webhook_factory, event):
    subscriber = webhook_factory(site=site)
    integration_id = create(api, api_url=API_URL, api_token=TOKEN).json()["id"]
    connector = Integration.objects.get(pk=integration_id).reply_webhook
    data = {"conversation_id": "conv_1", "message_id": "msg_1", "sender_type": "visitor", "body": "Hi"}
    if event == "webhook.test":
        data = {"webhook_id": subscriber.id, "message": "hi"}

    response = api.post("/api/v1/events", {"event": event, "data": data}, format="json")

    assert response.status_code == 201, response.json()
    assert [d["webhook"] for d in response.json()["deliveries"]] == [subscriber.id]
    assert not Delivery.objects.filter(webhook=connector).exists()


def test_channel_reply_cannot_be_published_through_the_api(api, site):
    integration_id = create(api, api_url=API_URL, api_token=TOKEN).json()["id"]
    connector = Integration.objects.get(pk=integration_id).reply_webhook
    data = {
        "conversation_id": "conv_1",
        "message_id": "msg_1",
        "connector": "chat2desk",
        "text": "Spam to every client",
        "recipient": {"client_id": "12345678"},
    }

    response = api.post("/api/v1/events", {"event": "channel.reply", "data": data}, format="json")

    assert response.status_code == 400, response.content
    assert "unknown event type 'channel.reply'" in response.json()["message"]
    assert not Delivery.objects.filter(webhook=connector).exists()
    assert "channel.reply" not in json.dumps(api.get("/api/v1/event-types").json())


# --- giving a conversation back to the AI --------------------------------------------------------
def test_resume_gives_a_paused_conversation_back_to_the_ai(api, site):
    conversation = domain.conversation_create(site=site, channel="whatsapp")
    domain.conversation_transfer(conversation=conversation, transfer={"source": "chat2desk", "request_id": 1})

    response = api.post(f"/api/v1/conversations/{conversation.id}/resume")

    assert response.status_code == 200, response.json()
    assert response.json()["session"] == "active" and response.json()["status"] == "open"
    conversation.refresh_from_db()
    assert conversation.session == "active"
    assert conversation.context["transfers"][0]["request_id"] == 1, "the transfer stays on record"


def test_a_closed_conversation_cannot_be_resumed(api, site):
    conversation = domain.conversation_close(conversation=domain.conversation_create(site=site, channel="whatsapp"))

    response = api.post(f"/api/v1/conversations/{conversation.id}/resume")

    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert "is closed" in response.json()["message"]
    conversation.refresh_from_db()
    assert conversation.session == "closed"


def test_resume_is_site_scoped(api, site):
    conversation = domain.conversation_handoff(conversation=domain.conversation_create(site=site, channel="web"), reason="refund")
    response = client_for(SiteFactory()).post(f"/api/v1/conversations/{conversation.id}/resume")
    assert response.status_code == 404
    conversation.refresh_from_db()
    assert conversation.session == "paused"
