"""The webchat connector's rules without a socket: origins, sessions, message checks, the rate limit;
and its configuration through the REST API and the admin. The Socket.IO round trips are in
test_webchat_socket.py, the widget in a browser in tests/browser/test_webchat_widget.py."""

import pytest
from django.core.exceptions import ValidationError

from domain import services as domain
from inbound import integrations
from inbound.connectors.webchat import services as webchat
from inbound.connectors.webchat.services import TokenBucket, VisitorRefused
from inbound.origins import origin_normalise, origins_clean

pytestmark = pytest.mark.django_db

SHOP = "https://shop.example"


@pytest.fixture
def chat(site):
    return integrations.integration_create(site=site, connector_type="webchat", name="Shop chat", allowed_origins=SHOP)


def opened(chat, origin=SHOP, **auth) -> webchat.Session:
    return webchat.session_open(auth={"integration": chat.id, **auth}, origin=origin, own_origins=["http://agent.test"])


def refusal(chat_or_id, origin=SHOP, **auth) -> str:
    integration_id = getattr(chat_or_id, "id", chat_or_id)
    with pytest.raises(VisitorRefused) as refused:
        webchat.session_open(auth={"integration": integration_id, **auth}, origin=origin, own_origins=["http://agent.test"])
    return refused.value.code


# --- origins -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "given, origin",
    [
        ("https://Shop.Example", "https://shop.example"),
        ("https://shop.example:443/", "https://shop.example"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_an_origin_is_normalised_as_browsers_send_it(given, origin):
    assert origin_normalise(given) == origin


@pytest.mark.parametrize(
    "given",
    [
        "shop.example",
        "ftp://shop.example",
        "https://shop.example/page",
        "https://*.shop.example",
        "https://",
        "https://shop.example:99999",
    ],
)
def test_what_is_not_an_origin_is_refused_with_the_field_named(given):
    with pytest.raises(ValidationError) as error:
        origins_clean(given)
    assert "allowed_origins" in error.value.message_dict
    assert "is not an origin" in error.value.message_dict["allowed_origins"][0]


def test_allowed_origins_are_kept_one_per_line_without_duplicates(site):
    chat = integrations.integration_create(
        site=site,
        connector_type="webchat",
        allowed_origins=" https://Shop.example\n\nhttps://shop.example/ , http://localhost:8000",
    )
    assert chat.allowed_origins == "https://shop.example\nhttp://localhost:8000"


def test_only_a_webchat_integration_has_allowed_origins(site):
    with pytest.raises(ValidationError) as error:
        integrations.integration_create(site=site, connector_type="chat2desk", allowed_origins=SHOP)
    assert error.value.message_dict == {"allowed_origins": ["only a webchat integration has allowed origins"]}


# --- sessions ----------------------------------------------------------------------------------
def test_a_page_of_an_allowed_origin_gets_a_new_signed_session(chat):
    session = opened(chat, page_url=f"{SHOP}/cart")
    assert (session.resumed, session.conversation_id, session.page_url) == (False, None, f"{SHOP}/cart")
    assert session.visitor_id.startswith("web_") and session.token.startswith(session.visitor_id + ":")
    # Signed for this integration: another webchat integration does not take it.
    other = integrations.integration_create(site=chat.site, connector_type="webchat", allowed_origins=SHOP)
    assert opened(other, session=session.token).resumed is False
    assert opened(chat, session=session.token).resumed is True


def test_an_empty_origin_list_allows_only_the_services_own_pages(chat):
    integrations.integration_update(integration=chat, allowed_origins="")
    assert refusal(chat) == "origin_not_allowed"
    assert opened(chat, origin="http://agent.test").resumed is False


@pytest.mark.parametrize(
    "auth, code",
    [
        (None, "invalid_auth"),
        ("intg_x", "invalid_auth"),
        ({"integration": 7}, "invalid_auth"),
        ({"integration": "intg_nope"}, "integration_not_found"),
    ],
)
def test_a_connection_without_a_webchat_integration_is_refused(auth, code):
    with pytest.raises(VisitorRefused) as refused:
        webchat.session_open(auth=auth, origin=SHOP, own_origins=[])
    assert refused.value.code == code


def test_refusals_say_what_to_fix(chat):
    assert refusal(chat, origin=None) == "origin_required"
    assert refusal(chat, origin="https://evil.example") == "origin_not_allowed"
    assert refusal(chat, page_url="x" * 3000) == "invalid_page_url"
    integrations.integration_update(integration=chat, active=False)
    assert refusal(chat) == "integration_inactive"


def test_a_session_resumes_its_open_conversation_with_its_messages(chat):
    first = opened(chat)
    conversation = domain.conversation_create(site=chat.site, channel="web", integration=chat, external_id=first.visitor_id)
    domain.message_create(conversation=conversation, sender_type="visitor", body="Hi")
    domain.message_create(conversation=conversation, sender_type="agent", body="Hello!")

    again = opened(chat, session=first.token)
    assert again.conversation_id == conversation.id
    assert [(m["sender_type"], m["text"]) for m in again.history] == [("visitor", "Hi"), ("agent", "Hello!")]
    assert again.as_event()["messages"] == again.history

    domain.conversation_close(conversation=conversation)
    assert opened(chat, session=first.token).conversation_id is None


# --- messages and limits -----------------------------------------------------------------------
def test_a_message_must_be_text_within_the_limit(settings):
    settings.AGENTBOT_WEBCHAT_MAX_MESSAGE_CHARS = 10
    assert webchat.message_text({"text": "  hello  "}) == "hello"
    for data, code in [
        ("hello", "invalid_message"),
        ({"text": 5}, "invalid_message"),
        ({"text": " "}, "empty_message"),
        ({"text": "x" * 11}, "message_too_long"),
        ({"text": "a\x00b"}, "invalid_message"),
    ]:
        with pytest.raises(VisitorRefused) as refused:
            webchat.message_text(data)
        assert refused.value.code == code, data


def test_the_token_bucket_allows_a_burst_then_the_rate(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(webchat.time, "monotonic", lambda: now[0])
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one more at 2 a second
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 60  # never more than the burst saved up
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


# --- the REST API ------------------------------------------------------------------------------
def test_the_api_creates_a_webchat_with_its_origins_and_embed_snippet(api):
    response = api.post(
        "/api/v1/integrations",
        {"connector_type": "webchat", "name": "Shop chat", "allowed_origins": ["https://Shop.example", "http://localhost:3000"]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["allowed_origins"] == ["https://shop.example", "http://localhost:3000"]
    assert body["embed_snippet"] == (
        f'<script src="http://testserver/static/webchat/widget.js" data-integration="{body["id"]}" async></script>'
    )
    # The widget talks over Socket.IO: there is no webhook URL to post to, nor a secret to sign with.
    assert body["webhook_url"] is None and body["webhook_secret"] is None
    changed = api.patch(f"/api/v1/integrations/{body['id']}", {"allowed_origins": []}, format="json")
    assert changed.status_code == 200 and changed.json()["allowed_origins"] == []


@pytest.mark.parametrize("origins", [["https://shop.example/path"], "https://shop.example", [5]])
def test_the_api_refuses_bad_origins_naming_the_field(api, chat, origins):
    response = api.patch(f"/api/v1/integrations/{chat.id}", {"allowed_origins": origins}, format="json")
    assert response.status_code == 400
    assert response.json()["message"].startswith("allowed_origins")


def test_the_api_refuses_origins_on_another_connector(api):
    response = api.post("/api/v1/integrations", {"connector_type": "chat2desk", "allowed_origins": [SHOP]}, format="json")
    assert response.status_code == 400
    assert response.json()["message"] == "allowed_origins: only a webchat integration has allowed origins"


# --- the admin ---------------------------------------------------------------------------------
INTEGRATIONS = "/admin/inbound/integration/"


def test_the_admin_adds_a_webchat_and_shows_its_embed_snippet(admin_client, site):
    response = admin_client.post(
        f"{INTEGRATIONS}add/",
        {
            "name": "Shop chat",
            "site": site.pk,
            "connector_type": "webchat",
            "active": "on",
            "allowed_origins": "https://Shop.example/",
        },
        follow=True,
    )
    assert response.status_code == 200
    chat = site.integrations.get()
    assert (chat.connector_type, chat.allowed_origins) == ("webchat", SHOP)
    assert not [m for m in response.context["messages"] if "secret" in str(m).lower()]

    html = admin_client.get(f"{INTEGRATIONS}{chat.pk}/change/").content.decode()
    assert 'id="integration-webchat"' in html and 'id="integration-webhook"' not in html
    assert f"data-integration=&quot;{chat.id}&quot;" in html
    assert f"/webchat/demo?integration={chat.id}" in html


def test_the_admin_edits_origins_and_refuses_what_is_not_one(admin_client, chat):
    url = f"{INTEGRATIONS}{chat.pk}/change/"
    form = {"name": chat.name, "active": "on", "allowed_origins": "https://shop.example/checkout"}
    response = admin_client.post(url, form)
    assert response.status_code == 200  # the form again, with the error
    assert "is not an origin" in response.content.decode()
    response = admin_client.post(url, {**form, "allowed_origins": "https://shop.example\nhttps://www.shop.example"})
    assert response.status_code == 302
    chat.refresh_from_db()
    assert chat.allowed_origins == "https://shop.example\nhttps://www.shop.example"


def test_the_webchat_panel_speaks_brazilian_portuguese(admin_client, chat):
    html = admin_client.get(f"{INTEGRATIONS}{chat.pk}/change/", HTTP_ACCEPT_LANGUAGE="pt-br").content.decode()
    for text in ("Incorporar o widget", "Página de demonstração", "Origens permitidas"):
        assert text in html


@pytest.mark.parametrize("junk", ["\u0000", "intg_\u0000", "intg_" + "z" * 26 + "\u0000", "'; drop table x; --", "\ud800"])
def test_an_integration_id_out_of_its_grammar_is_refused_before_any_query(junk, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(VisitorRefused) as refused:
        webchat.session_open(auth={"integration": junk}, origin=SHOP, own_origins=[])
    assert refused.value.code == "integration_not_found"
    assert "\x00" not in str(refused.value), "the message names it printably"


def test_webchat_work_for_a_visitor_who_has_left_is_not_done():
    from inbound.connectors.webchat import socket as webchat_socket

    done = []
    with pytest.raises(webchat_socket.Gone):
        webchat_socket._in_thread(lambda: done.append(1), {}, lambda: False)
    assert done == [], "a flood's queued messages are not stored once their clients are gone"
    assert webchat_socket._in_thread(lambda: "stored", {}, lambda: True) == "stored"
