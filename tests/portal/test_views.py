"""The portal through Django's test client: links, sessions, site scoping, read-only, CSRF,
framing headers, and the pages calling the same services as the API."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from deliveries.models import Attempt, Delivery, Event
from portal.models import PortalLink, SiteMembership
from portal.services import portal_link_create, portal_settings_update
from subscriptions.models import Webhook
from tests.factories import WebhookFactory
from tests.portal.conftest import open_link

pytestmark = pytest.mark.django_db

PT_BR = {"HTTP_ACCEPT_LANGUAGE": "pt-BR,pt;q=0.9"}


def delivery_of(webhook, *, status="failed", event_type="message.created"):
    event = Event.objects.create(site=webhook.site, type=event_type, data={"body": "hi"})
    delivery = Delivery.objects.create(event=event, webhook=webhook, status=status, attempt_count=1, last_status_code=500)
    Attempt.objects.create(
        delivery=delivery,
        number=1,
        at=timezone.now(),
        status_code=500,
        request_headers={"X-Agentbot-Signature": "t=1,v1=abc", "Authorization": "Bearer very-secret"},
        response_headers={"Content-Type": "text/plain"},
        response_body="upstream broke",
        duration_ms=12,
    )
    return delivery


# --- the link API --------------------------------------------------------------------------------
def test_a_portal_link_is_created_with_the_api_key_and_stores_only_a_hash(api, site):
    response = api.post("/api/v1/portal-links", {"expires_in": 600, "read_only": True}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"url", "expires_at"}
    assert "/portal/enter#" in body["url"]
    token = body["url"].split("#", 1)[1]
    link = PortalLink.objects.get()
    assert link.site == site and link.read_only and token not in link.token_hash
    assert timedelta(seconds=590) < link.expires_at - timezone.now() <= timedelta(seconds=600)


def test_a_portal_link_lasts_an_hour_by_default(api):
    assert api.post("/api/v1/portal-links", {}, format="json").status_code == 201
    assert timedelta(minutes=59) < PortalLink.objects.get().expires_at - timezone.now() <= timedelta(hours=1)


@pytest.mark.parametrize("expires_in", [0, 59, 7 * 24 * 3600 + 1, "soon", True, None])
def test_a_portal_link_with_expires_in_out_of_bounds_is_a_400_that_says_why(api, expires_in):
    response = api.post("/api/v1/portal-links", {"expires_in": expires_in}, format="json")
    assert response.status_code == 400
    assert "expires_in" in response.content.decode()


def test_a_portal_link_needs_an_api_key(api_client):
    assert api_client.post("/api/v1/portal-links", {}, format="json").status_code in (401, 403)


# --- opening a link ----------------------------------------------------------------------------
def test_opening_a_link_starts_a_session_for_its_site_and_the_link_works_once(site):
    _, token = portal_link_create(site=site)
    client = Client()
    landing = client.get("/portal/enter")
    assert landing.status_code == 200 and token not in landing.content.decode()
    response = open_link(client, token)
    assert response.status_code == 302 and response["Location"] == "/portal/"
    assert response["Referrer-Policy"] == "same-origin"
    assert client.get("/portal/").status_code == 200

    again = open_link(Client(), token)
    assert again.status_code == 403
    assert "already used" in again.content.decode()


def test_an_expired_link_gets_a_clear_page(site):
    link, token = portal_link_create(site=site)
    PortalLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = open_link(Client(), token)
    assert response.status_code == 403 and "expired" in response.content.decode()


def test_a_tampered_link_gets_a_clear_page_and_no_session(site):
    _, token = portal_link_create(site=site)
    client = Client()
    response = open_link(client, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert response.status_code == 403 and "not valid" in response.content.decode()
    assert client.get("/portal/").status_code == 302  # to the login page
    assert open_link(client, token).status_code == 302, "the real link is still unused"


def test_a_portal_session_ends_with_a_page_the_host_app_may_frame(site, settings):
    portal_settings_update(site=site, allowed_origins=["https://app.example.com"])
    settings.AGENTBOT_PORTAL_SESSION_SECONDS = -1
    _, token = portal_link_create(site=site)
    client = Client()
    open_link(client, token)
    response = client.get("/portal/")
    assert response.status_code == 403 and "has ended" in response.content.decode()
    assert response["Content-Security-Policy"].endswith("frame-ancestors 'self' https://app.example.com")
    assert client.get(f"/portal/webhooks/{WebhookFactory(site=site).id}").status_code == 403


def test_a_members_session_ends(site, settings):
    user = get_user_model().objects.create_user("ines", password="pw-portal-123")
    SiteMembership.objects.create(user=user, site=site, role="editor")
    client = Client()
    client.post("/portal/login", {"username": "ines", "password": "pw-portal-123"})
    settings.AGENTBOT_PORTAL_SESSION_SECONDS = -1
    client.post("/portal/sites/switch", {"site": site.id})  # a session started now ends at once
    response = client.get("/portal/")
    assert response.status_code == 302 and response["Location"].startswith("/portal/login")
    settings.AGENTBOT_PORTAL_SESSION_SECONDS = 3600
    assert client.get("/portal/").status_code == 302, "an ended session does not start again by itself"
    client.post("/portal/login", {"username": "ines", "password": "pw-portal-123"})
    assert client.get("/portal/").status_code == 200


# --- scoping ----------------------------------------------------------------------------------
def test_every_url_naming_another_sites_object_is_a_404(portal, site, other_site):
    theirs = WebhookFactory(site=other_site)
    their_delivery = delivery_of(theirs)
    for url in (
        f"/portal/webhooks/{theirs.id}",
        f"/portal/webhooks/{theirs.id}/secret",
        f"/portal/webhooks/{theirs.id}/delete",
        f"/portal/deliveries/{their_delivery.id}",
        f"/portal/deliveries/{their_delivery.id}/outcome",
    ):
        assert portal.get(url).status_code == 404, url
    for url in (
        f"/portal/webhooks/{theirs.id}/enabled",
        f"/portal/webhooks/{theirs.id}/delete",
        f"/portal/webhooks/{theirs.id}/rotate-secret",
        f"/portal/webhooks/{theirs.id}/test",
        f"/portal/deliveries/{their_delivery.id}/retry",
    ):
        assert portal.post(url, {"enabled": "off"}).status_code == 404, url
    theirs.refresh_from_db()
    assert theirs.enabled and Webhook.objects.filter(pk=theirs.pk).exists()
    listing = portal.get("/portal/").content.decode()
    assert theirs.id not in listing


def test_an_integrations_connector_webhook_is_not_the_portals(portal, site):
    connector = WebhookFactory(site=site, connector="chat2desk")
    assert portal.get(f"/portal/webhooks/{connector.id}").status_code == 404


# --- read-only ---------------------------------------------------------------------------------
def test_a_read_only_session_sees_and_changes_nothing(read_only_portal, site):
    webhook = WebhookFactory(site=site)
    delivery = delivery_of(webhook)
    assert read_only_portal.get("/portal/").status_code == 200
    assert read_only_portal.get(f"/portal/webhooks/{webhook.id}").status_code == 200
    assert read_only_portal.get(f"/portal/deliveries/{delivery.id}").status_code == 200
    changes = [
        ("/portal/webhooks/new", {"url": "https://example.com/x", "events": ["*"], "format": "agentbot"}),
        (f"/portal/webhooks/{webhook.id}", {"url": "https://example.com/y", "events": ["*"], "format": "agentbot"}),
        (f"/portal/webhooks/{webhook.id}/enabled", {"enabled": "off"}),
        (f"/portal/webhooks/{webhook.id}/delete", {}),
        (f"/portal/webhooks/{webhook.id}/rotate-secret", {}),
        (f"/portal/webhooks/{webhook.id}/test", {}),
        (f"/portal/webhooks/{webhook.id}/redeliver", {"since": "2020-01-01T00:00"}),
        (f"/portal/deliveries/{delivery.id}/retry", {}),
    ]
    secret = webhook.secret
    for url, data in changes:
        assert read_only_portal.post(url, data).status_code == 403, url
    assert read_only_portal.get("/portal/webhooks/new").status_code == 403
    webhook.refresh_from_db()
    assert webhook.enabled and webhook.secret == secret and webhook.url == "https://hooks.example.com/agentbot"
    assert Webhook.objects.count() == 1 and Event.objects.count() == 1
    delivery.refresh_from_db()
    assert delivery.status == "failed"


# --- members -------------------------------------------------------------------------------------
@pytest.fixture
def member_factory(db):
    def make(username, *memberships):
        user = get_user_model().objects.create_user(username, password="pw-portal-123")
        for site, role in memberships:
            SiteMembership.objects.create(user=user, site=site, role=role)
        client = Client()
        response = client.post("/portal/login", {"username": username, "password": "pw-portal-123"})
        assert response.status_code == 302
        return client

    return make


def test_a_member_logs_in_and_switches_between_their_sites_only(member_factory, site, other_site):
    third = type(site).objects.create(id="site_third", name="Third")
    mine, also_mine, not_mine = WebhookFactory(site=site), WebhookFactory(site=other_site), WebhookFactory(site=third)
    client = member_factory("ana", (site, "editor"), (other_site, "viewer"))
    first = client.get("/portal/").content.decode()
    assert mine.id in first and also_mine.id not in first
    assert client.post("/portal/sites/switch", {"site": other_site.id}).status_code == 302
    second = client.get("/portal/").content.decode()
    assert also_mine.id in second and mine.id not in second
    assert client.post("/portal/sites/switch", {"site": third.id}).status_code == 404
    assert client.get(f"/portal/webhooks/{not_mine.id}").status_code == 404


def test_a_viewer_changes_nothing(member_factory, site):
    webhook = WebhookFactory(site=site)
    client = member_factory("vera", (site, "viewer"))
    assert client.get(f"/portal/webhooks/{webhook.id}").status_code == 200
    assert client.post(f"/portal/webhooks/{webhook.id}/enabled", {"enabled": "off"}).status_code == 403
    assert client.post(f"/portal/webhooks/{webhook.id}/delete").status_code == 403
    webhook.refresh_from_db()
    assert webhook.enabled


def test_a_membership_removed_ends_the_members_portal_at_once(member_factory, site):
    client = member_factory("rui", (site, "editor"))
    assert client.get("/portal/").status_code == 200
    SiteMembership.objects.all().delete()
    assert client.get("/portal/").status_code == 302


def test_a_user_without_membership_sees_no_site(db):
    get_user_model().objects.create_user("nobody", password="pw-portal-123")
    client = Client()
    client.post("/portal/login", {"username": "nobody", "password": "pw-portal-123"})
    response = client.get("/portal/", follow=True)
    assert "no site of yours" in response.content.decode()


# --- CSRF ----------------------------------------------------------------------------------------
def test_every_change_needs_the_csrf_token(site):
    webhook = WebhookFactory(site=site)
    client = Client(enforce_csrf_checks=True)
    _, token = portal_link_create(site=site)
    assert open_link(client, token).status_code == 302  # the link's own post is its token
    assert client.post(f"/portal/webhooks/{webhook.id}/enabled", {"enabled": "off"}).status_code == 403
    page = client.get("/portal/")
    csrf = page.context["csrf_token"]
    assert (
        client.post(f"/portal/webhooks/{webhook.id}/enabled", {"enabled": "off", "csrfmiddlewaretoken": str(csrf)}).status_code
        == 302
    )
    webhook.refresh_from_db()
    assert webhook.paused


# --- framing ------------------------------------------------------------------------------------
def test_with_no_allowed_origin_the_portal_is_framed_only_by_itself(portal):
    response = portal.get("/portal/")
    assert "frame-ancestors 'self'" in response["Content-Security-Policy"]
    assert response["Content-Security-Policy"].endswith("frame-ancestors 'self'")
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert response["Referrer-Policy"] == "same-origin"


def test_allowed_origins_become_frame_ancestors_and_lift_x_frame_options(portal, site):
    portal_settings_update(site=site, allowed_origins=["https://app.example.com", "http://localhost:3000/"])
    response = portal.get("/portal/")
    assert response["Content-Security-Policy"].endswith("frame-ancestors 'self' https://app.example.com http://localhost:3000")
    assert "X-Frame-Options" not in response


@pytest.mark.parametrize(
    "origin", ["app.example.com", "https://app.example.com/path", "ftp://x.example", "https://a.example; script-src *"]
)
def test_an_allowed_origin_that_is_not_an_origin_is_refused(site, origin):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        portal_settings_update(site=site, allowed_origins=[origin])


# --- pages through the services -------------------------------------------------------------------
def test_a_new_webhook_shows_its_secret_once(portal, site):
    response = portal.post(
        "/portal/webhooks/new",
        {
            "url": "https://hooks.example.com/crm",
            "events": ["message.created", "lead.submit"],
            "format": "leads",
            "description": "CRM",
        },
    )
    webhook = Webhook.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/portal/webhooks/{webhook.id}/secret"
    assert (webhook.events, webhook.format, webhook.description) == (["message.created", "lead.submit"], "leads", "CRM")
    shown = portal.get(response["Location"]).content.decode()
    assert webhook.secret in shown and "x-webhook-signature" in shown
    again = portal.get(response["Location"]).content.decode()
    assert webhook.secret not in again and "not shown again" in again
    for url in ("/portal/", f"/portal/webhooks/{webhook.id}"):
        assert webhook.secret not in portal.get(url).content.decode()


def test_the_form_says_what_the_service_says_about_a_url(portal, settings):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    response = portal.post("/portal/webhooks/new", {"url": "http://127.0.0.1/hook", "events": ["*"], "format": "agentbot"})
    assert response.status_code == 200 and Webhook.objects.count() == 0
    errors = response.context["form"].errors["url"]
    assert errors and ("private" in errors[0] or "loopback" in errors[0]), errors


def test_a_credential_url_is_shown_as_a_hint_and_kept_when_left_empty(portal, site):
    url = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"
    webhook = WebhookFactory(site=site, url=url, format="slack")
    page = portal.get(f"/portal/webhooks/{webhook.id}").content.decode()
    assert url not in page and webhook.url_hint() in page
    response = portal.post(
        f"/portal/webhooks/{webhook.id}", {"url": "", "events": ["lead.submit"], "format": "slack", "description": "x"}
    )
    assert response.status_code == 302
    webhook.refresh_from_db()
    assert webhook.url == url and webhook.events == ["lead.submit"]


def test_the_toggle_pauses_and_enables(portal, site):
    webhook = WebhookFactory(site=site)
    portal.post(f"/portal/webhooks/{webhook.id}/enabled", {"enabled": "off"})
    webhook.refresh_from_db()
    assert webhook.paused
    portal.post(f"/portal/webhooks/{webhook.id}/enabled", {"enabled": "on"})
    webhook.refresh_from_db()
    assert webhook.enabled


def test_delete_asks_first_then_deletes(portal, site):
    webhook = WebhookFactory(site=site)
    confirm = portal.get(f"/portal/webhooks/{webhook.id}/delete")
    assert confirm.status_code == 200 and Webhook.objects.filter(pk=webhook.pk).exists()
    assert portal.post(f"/portal/webhooks/{webhook.id}/delete").status_code == 302
    assert not Webhook.objects.filter(pk=webhook.pk).exists()


def test_rotating_shows_the_new_secret_once(portal, site):
    webhook = WebhookFactory(site=site)
    old = webhook.secret
    response = portal.post(f"/portal/webhooks/{webhook.id}/rotate-secret")
    webhook.refresh_from_db()
    assert webhook.secret != old and webhook.previous_secret == old
    assert webhook.secret in portal.get(response["Location"]).content.decode()


def test_send_test_answers_json_for_the_pages_script(portal, site, django_capture_on_commit_callbacks):
    webhook = WebhookFactory(site=site)
    response = portal.post(f"/portal/webhooks/{webhook.id}/test", HTTP_ACCEPT="application/json")
    assert response.status_code == 202
    delivery = Delivery.objects.get(webhook=webhook)
    assert response.json()["delivery"] == delivery.id and delivery.event.type == "webhook.test"
    outcome = portal.get(response.json()["outcome_url"]).json()
    assert outcome["status"] == "pending"


def test_a_deliverys_page_masks_credentials_and_shows_every_attempt(portal, site):
    delivery = delivery_of(WebhookFactory(site=site))
    page = portal.get(f"/portal/deliveries/{delivery.id}").content.decode()
    assert "very-secret" not in page and "t=1,v1=abc" in page and "upstream broke" in page and "HTTP 500" in page


def test_recent_deliveries_filter_by_status_and_event_type(portal, site):
    webhook = WebhookFactory(site=site)
    failed = delivery_of(webhook, status="failed", event_type="lead.submit")
    ok = delivery_of(webhook, status="succeeded", event_type="message.created")
    page = portal.get(f"/portal/webhooks/{webhook.id}", {"status": "failed"}).content.decode()
    assert failed.id in page and ok.id not in page
    page = portal.get(f"/portal/webhooks/{webhook.id}", {"event_type": "message.created", "since": "24h"}).content.decode()
    assert ok.id in page and failed.id not in page


def test_redeliver_failed_since_requeues_them(portal, site):
    webhook = WebhookFactory(site=site)
    failed = delivery_of(webhook)
    since = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    portal.post(f"/portal/webhooks/{webhook.id}/redeliver", {"since": since})
    failed.refresh_from_db()
    assert failed.status == "pending"


def test_the_catalogue_lists_every_event_type(portal):
    page = portal.get("/portal/events").content.decode()
    assert "message.created" in page and "lead.submit" in page and "webhook.test" in page


# --- languages -----------------------------------------------------------------------------------
def test_the_portal_speaks_brazilian_portuguese_when_asked(portal, site):
    WebhookFactory(site=site)
    english = portal.get("/portal/").content.decode()
    assert "New webhook" in english and 'lang="en' in english
    portuguese = portal.get("/portal/", **PT_BR).content.decode()
    assert "Novo webhook" in portuguese and "New webhook" not in portuguese and 'lang="pt-br"' in portuguese


def test_the_link_token_reaches_no_log_and_no_page(api, caplog):
    caplog.set_level("DEBUG")
    token = api.post("/api/v1/portal-links", {}, format="json").json()["url"].split("#", 1)[1]
    client = Client()
    landing = client.get("/portal/enter")
    open_link(client, token)
    refused = open_link(Client(), token)
    portal_page = client.get("/portal/")
    assert refused.status_code == 403
    for response in (landing, refused, portal_page):
        assert token not in response.content.decode()
    assert token not in caplog.text
    assert token.split(":")[0] not in caplog.text


def test_links_that_can_open_nothing_any_more_are_purged(site):
    from portal.services import portal_links_purge

    old, _ = portal_link_create(site=site)
    fresh, _ = portal_link_create(site=site)
    PortalLink.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(days=2))
    assert portal_links_purge() == 1
    assert list(PortalLink.objects.values_list("pk", flat=True)) == [fresh.pk]


def test_the_operator_adds_members_and_allowed_origins_in_the_admin(admin_client, site):
    user = get_user_model().objects.create_user("mia", password="pw-portal-123")
    response = admin_client.post("/admin/portal/sitemembership/add/", {"user": user.pk, "site": site.pk, "role": "editor"})
    assert response.status_code == 302 and SiteMembership.objects.get().role == "editor"
    refused = admin_client.post(
        "/admin/portal/portalsettings/add/", {"site": site.pk, "allowed_origins": '["https://app.example.com/path"]'}
    )
    assert refused.status_code == 200 and "not an origin" in refused.content.decode()
    saved = admin_client.post(
        "/admin/portal/portalsettings/add/", {"site": site.pk, "allowed_origins": '["https://App.example.com/"]'}
    )
    assert saved.status_code == 302
    assert site.portal_settings.allowed_origins == ["https://app.example.com"]


def test_send_test_to_a_webhook_disabled_by_the_service_answers_without_an_error(portal, site):
    webhook = WebhookFactory(site=site, enabled=False, disabled_reason="the receiver answered 410 Gone")
    response = portal.post(f"/portal/webhooks/{webhook.id}/test", HTTP_ACCEPT="application/json")
    assert response.status_code in (202, 409), response.content
    page = portal.post(f"/portal/webhooks/{webhook.id}/test", follow=True)
    assert page.status_code == 200


def test_a_host_app_sets_its_allowed_origins_with_the_api_key(api, site, portal):
    assert api.get("/api/v1/portal-settings").json() == {"allowed_origins": []}
    response = api.put("/api/v1/portal-settings", {"allowed_origins": ["https://App.example.com/"]}, format="json")
    assert response.status_code == 200 and response.json() == {"allowed_origins": ["https://app.example.com"]}
    assert portal.get("/portal/")["Content-Security-Policy"].endswith("frame-ancestors 'self' https://app.example.com")
    refused = api.put("/api/v1/portal-settings", {"allowed_origins": ["https://app.example.com/x"]}, format="json")
    assert refused.status_code == 400 and "not an origin" in refused.content.decode()
    assert api.put("/api/v1/portal-settings", {"allowed_origins": []}, format="json").json() == {"allowed_origins": []}
    assert portal.get("/portal/")["X-Frame-Options"] == "SAMEORIGIN"


def test_a_webhook_chooses_its_ordering_in_the_portal_and_keeps_it_when_left_out(portal, site):
    form = {"url": "https://example.com/ordered", "events": ["message.created"], "format": "agentbot", "ordering": "key"}
    assert portal.post("/portal/webhooks/new", form).status_code == 302
    webhook = Webhook.objects.get(site=site, url="https://example.com/ordered")
    assert webhook.ordering == "key"
    page = portal.get(f"/portal/webhooks/{webhook.id}").content.decode()
    assert 'name="ordering" value="key" id="id_ordering_1" checked' in page
    form.pop("ordering")
    form["description"] = "still ordered"
    portal.post(f"/portal/webhooks/{webhook.id}", form)
    webhook.refresh_from_db()
    assert (webhook.ordering, webhook.description) == ("key", "still ordered")


def test_the_webhook_form_sets_delivery_controls_and_keeps_the_secret_write_only(portal, site):
    import json

    response = portal.post(
        "/portal/webhooks/new",
        {
            "url": "https://hooks.example.com/crm",
            "events": ["message.created"],
            "format": "agentbot",
            "headers": json.dumps({"X-Tenant": "acme"}),
            "filter": json.dumps({"channel": {"$in": ["whatsapp"]}}),
            "rate_limit_count": "5",
            "rate_limit_period": "per_minute",
            "auth_type": "bearer",
            "auth_secret": "tok-portal",
        },
    )
    assert response.status_code == 302, response.context["form"].errors
    webhook = Webhook.objects.get()
    assert webhook.headers == {"X-Tenant": "acme"} and webhook.filter == {"channel": {"$in": ["whatsapp"]}}
    assert webhook.rate_limit == {"per_minute": 5} and webhook.auth == {"type": "bearer"}
    assert webhook.auth_secret == "tok-portal"
    page = portal.get(f"/portal/webhooks/{webhook.id}").content.decode()
    assert "tok-portal" not in page and "X-Tenant" in page

    # Saved again without a token: the stored one stays; a reserved header is refused at its field.
    fields = {"url": webhook.url, "events": ["message.created"], "format": "agentbot", "auth_type": "bearer"}
    response = portal.post(f"/portal/webhooks/{webhook.id}", {**fields, "headers": json.dumps({"webhook-id": "x"})})
    assert response.status_code == 200 and "webhook-id cannot be set" in response.context["form"].errors["headers"][0]
    response = portal.post(
        f"/portal/webhooks/{webhook.id}", {**fields, "rate_limit_count": "", "rate_limit_period": "per_second"}
    )
    assert response.status_code == 302
    webhook.refresh_from_db()
    assert webhook.auth_secret == "tok-portal" and webhook.rate_limit is None
