"""The register-webhook helper (seed 000) against a local fake of Chat2Desk's API."""

import re
import socket
from datetime import UTC, datetime

import pytest

from inbound import integrations
from inbound.connectors.chat2desk.parse import REGISTERED_EVENTS
from inbound.connectors.chat2desk.parse import parse as chat2desk_parse
from inbound.models import Integration
from tests.conftest import client_for
from tests.factories import SiteFactory

pytestmark = pytest.mark.django_db

PATHS = ["/api/integrations/{id}/register-webhook", "/api/v1/integrations/{id}/register-webhook"]
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")


def register(api, integration, path=PATHS[0]):
    return api.post(path.format(id=integration.id))


def registered_at(response) -> datetime:
    stamp = response.json()["webhookRegisteredAt"]
    assert ISO_Z.match(stamp), stamp
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def webhook_calls(fake):
    return [(c.method, c.path) for c in fake.calls if c.path.startswith("/v1/webhooks")]


@pytest.mark.parametrize("path", PATHS)
def test_the_first_call_registers_the_webhook_url_for_every_event_agentbot_handles(api, integration, chat2desk, path):
    before = datetime.now(UTC).replace(microsecond=0)

    response = register(api, integration, path)

    assert response.status_code == 200, response.json()
    assert set(response.json()) == {"ok", "webhookRegisteredAt"} and response.json()["ok"] is True
    assert before <= registered_at(response) <= datetime.now(UTC)
    (registration,) = chat2desk.registrations.values()
    assert registration.url == f"http://testserver/api/webhook/chat2desk/{integration.id}"
    assert {"inbox", "close_dialog", "close_request", "dialog_transferred"} <= set(registration.events)
    assert webhook_calls(chat2desk) == [("POST", "/v1/webhooks")]
    assert chat2desk.calls[0].headers["authorization"] == chat2desk.token
    integration.refresh_from_db()
    assert integration.remote_webhook_id == str(registration.id)
    assert integration.webhook_registered_at.replace(microsecond=0) == registered_at(response)
    shown = api.get(f"/api/v1/integrations/{integration.id}").json()
    assert shown["webhook_registered"] is True


def test_the_registered_url_is_the_public_url_when_one_is_set(api, integration, chat2desk, settings):
    settings.AGENTBOT_PUBLIC_URL = "https://agent.example.com"

    assert register(api, integration).status_code == 200

    (registration,) = chat2desk.registrations.values()
    assert registration.url == f"https://agent.example.com/api/webhook/chat2desk/{integration.id}"
    assert registration.url == api.get(f"/api/v1/integrations/{integration.id}").json()["webhook_url"]


def test_a_second_call_updates_the_same_registration(api, integration, chat2desk, settings):
    first = register(api, integration, PATHS[0])
    settings.AGENTBOT_PUBLIC_URL = "https://moved.example.com"

    again = register(api, integration, PATHS[1])

    assert again.status_code == 200, again.json()
    assert registered_at(again) >= registered_at(first)
    (registration,) = chat2desk.registrations.values()
    assert registration.url == f"https://moved.example.com/api/webhook/chat2desk/{integration.id}"
    assert webhook_calls(chat2desk) == [("POST", "/v1/webhooks"), ("PUT", f"/v1/webhooks/{registration.id}")]
    integration.refresh_from_db()
    assert integration.remote_webhook_id == str(registration.id)


def test_a_registration_deleted_at_chat2desk_is_made_again(api, integration, chat2desk):
    assert register(api, integration).status_code == 200
    (old_id,) = chat2desk.registrations
    chat2desk.registrations.clear()

    response = register(api, integration)

    assert response.status_code == 200, response.json()
    (new_id,) = chat2desk.registrations
    assert new_id != old_id
    assert webhook_calls(chat2desk) == [("POST", "/v1/webhooks"), ("PUT", f"/v1/webhooks/{old_id}"), ("POST", "/v1/webhooks")]
    integration.refresh_from_db()
    assert integration.remote_webhook_id == str(new_id)


@pytest.mark.parametrize("path", PATHS)
def test_without_an_api_url_it_is_400_not_supported(api, site, chat2desk, path):
    integration = integrations.integration_create(site=site, name="No URL", api_token=chat2desk.token)

    response = register(api, integration, path)

    assert response.status_code == 400
    assert response.json()["error"] == "not_supported" and "API URL" in response.json()["message"]
    assert not chat2desk.calls
    integration.refresh_from_db()
    assert integration.webhook_registered_at is None


def test_without_an_api_token_it_is_400_not_supported(api, site, chat2desk):
    integration = integrations.integration_create(site=site, name="No token", api_url=chat2desk.url)
    response = register(api, integration)
    assert response.status_code == 400
    assert response.json()["error"] == "not_supported" and "token" in response.json()["message"]
    assert not chat2desk.calls


def test_a_webchat_integration_is_400_not_supported(api, site, chat2desk):
    integration = integrations.integration_create(
        site=site, connector_type="webchat", name="Widget", api_url=chat2desk.url, api_token=chat2desk.token
    )
    response = register(api, integration)
    assert response.status_code == 400
    assert response.json()["error"] == "not_supported" and "webchat" in response.json()["message"]
    assert not chat2desk.calls


def test_a_token_chat2desk_refuses_is_502_without_the_token_in_the_message(api, site, chat2desk):
    wrong = "c2d-WRONG-token-93b1"
    integration = integrations.integration_create(site=site, name="Support", api_url=chat2desk.url, api_token=wrong)

    response = register(api, integration)

    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "chat2desk_error" and "401" in body["message"]
    assert wrong not in response.content.decode()
    assert chat2desk.calls[0].headers["authorization"] == wrong, "the token was sent, and refused"
    integration.refresh_from_db()
    assert (integration.remote_webhook_id, integration.webhook_registered_at) == ("", None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_chat2desk_is_502(api, site):
    integration = integrations.integration_create(site=site, api_url=f"http://127.0.0.1:{free_port()}", api_token="t")
    response = register(api, integration)
    assert response.status_code == 502 and response.json()["error"] == "chat2desk_error"
    assert Integration.objects.get(pk=integration.pk).webhook_registered_at is None


def test_a_private_api_url_is_not_called_once_private_urls_are_refused(api, integration, chat2desk, settings):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    response = register(api, integration)
    assert response.status_code == 502 and response.json()["error"] == "chat2desk_error"
    assert not chat2desk.calls


def test_a_registration_answer_without_an_id_is_502(api, integration, chat2desk):
    chat2desk.handle = lambda call: (200, {"status": "success", "data": {}})
    response = register(api, integration)
    assert response.status_code == 502 and "no id" in response.json()["message"]
    integration.refresh_from_db()
    assert integration.remote_webhook_id == ""


@pytest.mark.parametrize("path", PATHS)
def test_both_paths_need_an_api_key_and_are_site_scoped(api_client, integration, chat2desk, path):
    unauthenticated = register(api_client, integration, path)
    assert unauthenticated.status_code == 401 and unauthenticated.json()["error"] == "not_authenticated"

    stranger = register(client_for(SiteFactory()), integration, path)
    assert stranger.status_code == 404 and stranger.json()["error"] == "not_found"

    assert not chat2desk.calls
    integration.refresh_from_db()
    assert integration.webhook_registered_at is None


def test_every_registered_event_is_one_the_parser_acts_on(api, integration, chat2desk):
    assert register(api, integration).status_code == 200
    (registration,) = chat2desk.registrations.values()
    assert registration.events == REGISTERED_EVENTS
    for hook_type in registration.events:
        parsed = chat2desk_parse({"hook_type": hook_type, "request_id": 1, "text": "Hi", "client_id": "1"})
        assert parsed.kind in ("message", "status"), f"{hook_type} is registered but ignored"
