"""Integrations in the admin: the webhook's secret shown once, the API token never shown, the
register-webhook button against a fake Chat2Desk, the pt-BR translation; the inbound log, the
knowledge base, connector webhooks read-only in the webhook admin, and giving a conversation back
to the AI."""

from html import unescape

import pytest
from django.contrib.admin.utils import quote
from django.utils import timezone

from domain import services as domain
from domain.models import Conversation
from inbound import integrations
from inbound.models import InboundEvent, Integration
from subscriptions.models import Webhook, mask_secret

pytestmark = pytest.mark.django_db

INTEGRATIONS = "/admin/inbound/integration/"
WEBHOOKS = "/admin/subscriptions/webhook/"
PT_BR = {"HTTP_ACCEPT_LANGUAGE": "pt-br"}


@pytest.fixture
def admin(admin_client):
    return admin_client


def page(admin, url: str, **headers) -> str:
    response = admin.get(url, **headers)
    assert response.status_code == 200, url
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def change_url(integration) -> str:
    return f"{INTEGRATIONS}{integration.pk}/change/"


def register(admin, integration, **headers):
    return admin.post(f"{INTEGRATIONS}{integration.pk}/register-webhook/", follow=True, **headers)


def webhook_url(integration) -> str:
    return f"http://testserver{integration.webhook_path}"


# --- the list and its badge ----------------------------------------------------------------------
def test_list_shows_webhook_pending_until_the_webhook_is_registered(admin, integration):
    listing = page(admin, INTEGRATIONS)
    assert "Webhook pending" in listing and "Webhook OK" not in listing
    assert webhook_url(integration) in listing

    integration.webhook_registered_at = timezone.now()
    integration.save(update_fields=["settings"])
    listing = page(admin, INTEGRATIONS)
    assert "Webhook OK" in listing and "Webhook pending" not in listing


# --- the secret, once; the token, never ----------------------------------------------------------
def test_adding_an_integration_shows_its_secret_once_with_the_webhook_url(admin, site, chat2desk):
    response = admin.post(
        f"{INTEGRATIONS}add/",
        {
            "name": "Support",
            "site": site.pk,
            "connector_type": "chat2desk",
            "active": "on",
            "api_url": chat2desk.url,
            "new_api_token": chat2desk.token,
        },
        follow=True,
    )
    integration = Integration.objects.get()
    assert integration.api_token == chat2desk.token and integration.api_url == chat2desk.url
    assert integration.reply_webhook.url == f"{chat2desk.url}/v1/messages", "created through the service"
    (note,) = [m for m in messages_of(response) if "Webhook secret" in m]
    assert integration.webhook_secret in note and webhook_url(integration) in note
    html = response.content.decode()
    assert html.count(integration.webhook_secret) == 1
    assert chat2desk.token not in html

    for url in (INTEGRATIONS, change_url(integration)):
        html = page(admin, url)
        assert integration.webhook_secret not in html and chat2desk.token not in html, url


def test_rotating_the_secret_shows_the_new_one_once(admin, integration):
    old = integration.webhook_secret
    response = admin.post(f"{INTEGRATIONS}{integration.pk}/act/rotate_secret/", follow=True)
    integration.refresh_from_db()
    assert integration.webhook_secret != old
    html = response.content.decode()
    assert html.count(integration.webhook_secret) == 1 and old not in html
    assert any("New webhook secret" in m for m in messages_of(response))
    assert integration.webhook_secret not in page(admin, change_url(integration))

    response = admin.post(INTEGRATIONS, {"action": "rotate_secret", "_selected_action": [integration.pk]}, follow=True)
    rotated = Integration.objects.get(pk=integration.pk).webhook_secret
    assert rotated != integration.webhook_secret and response.content.decode().count(rotated) == 1


def test_api_token_is_write_only_and_blank_keeps_it(admin, integration, chat2desk):
    change = page(admin, change_url(integration))
    assert 'name="new_api_token"' in change and chat2desk.token not in change

    form = {"name": "Renamed", "active": "on", "api_url": chat2desk.url, "new_api_token": ""}
    response = admin.post(change_url(integration), form, follow=True)
    assert response.status_code == 200 and chat2desk.token not in response.content.decode()
    integration.refresh_from_db()
    assert integration.name == "Renamed" and integration.api_token == chat2desk.token

    admin.post(change_url(integration), {**form, "new_api_token": "new-c2d-token"})
    integration.refresh_from_db()
    assert integration.api_token == "new-c2d-token"
    assert integration.reply_webhook.secret == "new-c2d-token", "the reply webhook follows the token"


def test_a_refused_api_url_is_a_form_error_that_does_not_echo_the_token(admin, integration, settings):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    response = admin.post(
        change_url(integration), {"name": "x", "active": "on", "api_url": "http://10.0.0.5", "new_api_token": "typed-token"}
    )
    html = response.content.decode()
    assert response.status_code == 200 and "errornote" in html
    assert "typed-token" not in html and integration.api_token not in html
    integration.refresh_from_db()
    assert integration.name == "Support"


def test_connector_webhook_page_does_not_hint_at_the_api_token(admin, integration):
    html = page(admin, f"{WEBHOOKS}{integration.reply_webhook_id}/change/")
    assert integration.api_token not in html and mask_secret(integration.api_token) not in html


# --- register webhook ----------------------------------------------------------------------------
def test_register_button_registers_then_re_registers_the_same_webhook(admin, integration, chat2desk, settings):
    change = page(admin, change_url(integration))
    assert "Register webhook" in change and f'action="{INTEGRATIONS}{quote(integration.pk)}/register-webhook/"' in change

    response = register(admin, integration)
    integration.refresh_from_db()
    (note,) = messages_of(response)
    assert note.startswith("Webhook registered with Chat2Desk at ")
    assert f"{integration.webhook_registered_at:%Y-%m-%d %H:%M:%S}" in note and webhook_url(integration) in note
    (registration,) = chat2desk.registrations.values()
    assert registration.url == webhook_url(integration)
    assert str(registration.id) == integration.remote_webhook_id
    html = response.content.decode()
    assert "Webhook OK" in html and "Re-register webhook" in html

    settings.AGENTBOT_PUBLIC_URL = "https://agentbot.example.com"
    response = register(admin, integration)
    (again,) = chat2desk.registrations.values()
    assert again.id == registration.id, "re-registering updates Chat2Desk's registration"
    assert again.url == f"https://agentbot.example.com{integration.webhook_path}"
    assert [call.method for call in chat2desk.calls] == ["POST", "PUT"]


def test_register_without_api_url_says_what_is_missing(admin, site, chat2desk):
    integration = integrations.integration_create(site=site, name="No URL", api_token=chat2desk.token)
    response = register(admin, integration)
    (note,) = messages_of(response)
    assert note.startswith("The webhook was not registered: set the integration's API URL")
    assert chat2desk.registrations == {}
    assert "Webhook pending" in response.content.decode()


def test_register_reports_chat2desk_refusing_without_showing_the_token(admin, site, chat2desk):
    integration = integrations.integration_create(site=site, api_url=chat2desk.url, api_token="wrong-token")
    response = register(admin, integration)
    (note,) = messages_of(response)
    assert note.startswith("Chat2Desk did not register the webhook: Chat2Desk answered 401")
    assert "wrong-token" not in response.content.decode()
    integration.refresh_from_db()
    assert integration.webhook_registered_at is None


def test_register_only_answers_a_post(admin, integration, chat2desk):
    assert admin.get(f"{INTEGRATIONS}{integration.pk}/register-webhook/").status_code == 405
    assert chat2desk.calls == []


# --- Brazilian Portuguese --------------------------------------------------------------------------
def test_the_admin_speaks_brazilian_portuguese_when_asked(admin, integration, chat2desk):
    listing = page(admin, INTEGRATIONS, **PT_BR)
    assert "Webhook pendente" in listing and "Webhook pending" not in listing
    change = page(admin, change_url(integration), **PT_BR)
    assert "Registrar webhook" in change and "Register webhook" not in change
    assert "Salvar" in change and "Início" in change, "Django's own admin catalogue still applies"

    response = register(admin, integration, **PT_BR)
    (note,) = messages_of(response)
    assert note.startswith("Webhook registrado no Chat2Desk em ")
    assert "Registrar webhook novamente" in response.content.decode()
    assert "Re-register webhook" in page(admin, change_url(integration)), "English without the header"
    home = page(admin, "/admin/", **PT_BR)
    assert all(name in home for name in ("Integrações", "Eventos recebidos", "Base de conhecimento"))

    rotated = admin.post(f"{INTEGRATIONS}{integration.pk}/act/rotate_secret/", follow=True, **PT_BR)
    (note,) = [m for m in messages_of(rotated) if "segredo" in m]
    integration.refresh_from_db()
    assert note.startswith(f"Novo segredo do webhook de {integration}: <code>{integration.webhook_secret}</code>")
    assert "copie agora; ele não será mostrado novamente. O Chat2Desk assina com ele o que envia para" in note


# --- the inbound log and the knowledge base --------------------------------------------------------
def test_inbound_events_are_listed_and_shown_read_only(admin, integration):
    event = InboundEvent.objects.create(
        integration=integration,
        kind="message",
        status="failed",
        payload={"text": "Olá, preciso de ajuda", "client_id": 7},
        outcome="the responder was down",
        attempts=3,
    )
    listing = page(admin, "/admin/inbound/inboundevent/")
    assert "the responder was down" in listing and 'class="console-status error">failed' in listing
    detail = page(admin, f"/admin/inbound/inboundevent/{event.pk}/change/")
    assert '"text": "Olá, preciso de ajuda",\n  "client_id": 7' in unescape(detail)
    assert 'name="_save"' not in detail
    assert admin.get("/admin/inbound/inboundevent/add/").status_code == 403
    assert admin.post(f"/admin/inbound/inboundevent/{event.pk}/change/", {"status": "processed"}).status_code == 403

    recent = page(admin, change_url(integration))
    assert f"/admin/inbound/inboundevent/{event.pk}/change/" in recent
    assert f"/admin/inbound/inboundevent/?integration__id__exact={integration.pk}" in recent


def test_knowledge_base_is_searchable(admin, knowledge):
    assert knowledge.question in page(admin, "/admin/inbound/knowledgeentry/?q=horario")
    assert knowledge.question not in page(admin, "/admin/inbound/knowledgeentry/?q=refund")
    assert knowledge.question not in page(admin, "/admin/inbound/knowledgeentry/?enabled__exact=0")


# --- connector webhooks in the webhook admin -------------------------------------------------------
def test_connector_webhook_is_read_only_and_names_its_integration(admin, integration):
    webhook = integration.reply_webhook
    url = f"{WEBHOOKS}{webhook.pk}/change/"
    html = page(admin, url)
    assert 'name="_save"' not in html and f'href="{change_url(integration)}"' in html
    assert "change it there" in html
    assert admin.post(url, {"url": "https://elsewhere.example.com/", "events": ["*"], "format": "agentbot"}).status_code == 403
    assert admin.post(f"{WEBHOOKS}{webhook.pk}/act/rotate_secret/").status_code == 404

    response = admin.post(WEBHOOKS, {"action": "rotate_secret", "_selected_action": [webhook.pk]}, follow=True)
    assert any("left alone" in m for m in messages_of(response))
    webhook.refresh_from_db()
    assert webhook.secret == integration.api_token and webhook.url.endswith("/v1/messages")


def test_webhook_add_form_offers_only_subscriber_formats(admin, site):
    assert 'value="chat2desk"' not in page(admin, f"{WEBHOOKS}add/")
    response = admin.post(
        f"{WEBHOOKS}add/", {"site": site.pk, "url": "https://crm.example.com/hook", "events": ["*"], "format": "chat2desk"}
    )
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Webhook.objects.exists()


# --- giving a conversation back to the AI ----------------------------------------------------------
def test_give_back_to_the_ai_resumes_paused_open_conversations_only(admin, site, integration):
    paused = domain.conversation_create(
        site=site,
        channel="whatsapp",
        integration=integration,
        external_id="client-12345",
        context={"chat2desk": {"client_id": 12345}},
    )
    domain.conversation_handoff(conversation=paused, reason="asked for a person")
    active = domain.conversation_create(site=site, channel="whatsapp")
    closed = domain.conversation_create(site=site, channel="whatsapp")
    domain.conversation_close(conversation=closed)

    detail = page(admin, f"/admin/domain/conversation/{paused.pk}/change/")
    assert "Give back to the AI" in detail and "client-12345" in detail
    assert '"chat2desk": {\n    "client_id": 12345' in unescape(detail)
    assert "Give back to the AI" not in page(admin, f"/admin/domain/conversation/{active.pk}/change/")

    response = admin.post(
        "/admin/domain/conversation/",
        {"action": "give_back_to_ai", "_selected_action": [paused.pk, active.pk, closed.pk]},
        follow=True,
    )
    (note,) = messages_of(response)
    assert note.startswith("1 conversation given back to the AI") and "2 left as they were" in note
    sessions = {c.pk: c.session for c in Conversation.objects.all()}
    assert sessions == {paused.pk: "active", active.pk: "active", closed.pk: "closed"}
