import pytest

from subscriptions.models import Webhook
from tests.conftest import client_for
from tests.factories import SiteFactory

pytestmark = pytest.mark.django_db


def create(api, **overrides):
    body = {"url": "https://crm.example.com/hooks", "events": ["message.created"], "description": "CRM"}
    body.update(overrides)
    return api.post("/api/v1/webhooks", body, format="json")


def test_create_returns_the_secret_once_and_never_again(api):
    created = create(api)
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["id"].startswith("wh_")
    assert body["format"] == "agentbot" and body["enabled"] is True

    shown = api.get(f"/api/v1/webhooks/{body['id']}").json()
    listed = api.get("/api/v1/webhooks").json()
    assert "secret" not in shown and body["secret"] not in str(shown)
    assert shown["secret_hint"] == f"whsec_…{body['secret'][-4:]}"
    assert listed["count"] == 1 and body["secret"] not in str(listed)
    assert set(listed) == {"count", "next", "previous", "results"}


def test_secret_is_encrypted_at_rest(api):
    from django.db import connection

    body = create(api).json()
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM subscriptions_webhook WHERE id = %s", [body["id"]])
        (stored,) = cursor.fetchone()
    assert body["secret"] not in stored


def test_patch_disables_and_changes_events(api):
    webhook_id = create(api).json()["id"]
    changed = api.patch(f"/api/v1/webhooks/{webhook_id}", {"enabled": False, "events": ["*"]}, format="json")
    assert changed.status_code == 200
    assert changed.json()["enabled"] is False and changed.json()["events"] == ["*"]


def test_delete_removes_the_webhook(api):
    webhook_id = create(api).json()["id"]
    assert api.delete(f"/api/v1/webhooks/{webhook_id}").status_code == 204
    assert api.get(f"/api/v1/webhooks/{webhook_id}").status_code == 404


def test_rotate_returns_a_new_secret_and_keeps_the_old_one_in_grace(api):
    first = create(api).json()
    rotated = api.post(f"/api/v1/webhooks/{first['id']}/rotate-secret", {"grace_seconds": 600}, format="json")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != first["secret"]
    webhook = Webhook.objects.get(pk=first["id"])
    assert webhook.previous_secret == first["secret"] and webhook.previous_secret_expires_at is not None


@pytest.mark.parametrize(
    "overrides, field, phrase",
    [
        ({"url": "not-a-url"}, "url", "http:// or https://"),
        ({"url": "not a url"}, "url", "spaces or control characters"),
        ({"url": "ftp://example.com/x"}, "url", "http:// or https://"),
        ({"url": "https:///path"}, "url", "must name a host"),
        ({"url": "https://user:pw@example.com/"}, "url", "user name or password"),
        ({"events": ["message.deleted"]}, "events", "unknown event type 'message.deleted'"),
        ({"events": []}, "events", "at least one"),
        ({"events": "message.created"}, "events", "list"),
        ({"description": 12}, "description", "must be a JSON string"),
        # longer than the schema's maxLength as sent, though not once trimmed (schemathesis found it)
        ({"description": "CRM" + " " * 500}, "description", "no more than 500 characters"),
        ({"format": "xml"}, "format", "not a valid choice"),
    ],
)
def test_bad_webhook_input_gets_a_400_naming_the_field(api, overrides, field, phrase):
    response = create(api, **overrides)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_request"
    assert field in body["fields"]
    assert phrase in body["message"]


def test_private_url_is_refused_when_private_urls_are_off(api, settings):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    response = create(api, url="http://127.0.0.1:8080/hook")
    assert response.status_code == 400
    assert "non-public address" in response.json()["message"]


def test_no_key_is_401_and_a_wrong_key_is_401(api_client):
    missing = api_client.get("/api/v1/webhooks")
    assert missing.status_code == 401 and "Bearer" in missing.json()["message"]
    api_client.credentials(HTTP_AUTHORIZATION="Bearer abk_nope")
    assert api_client.get("/api/v1/webhooks").status_code == 401


def test_another_sites_webhook_is_404_everywhere(api, site):
    other = client_for(SiteFactory())
    webhook_id = create(api).json()["id"]
    assert other.get(f"/api/v1/webhooks/{webhook_id}").status_code == 404
    assert other.patch(f"/api/v1/webhooks/{webhook_id}", {"enabled": False}, format="json").status_code == 404
    assert other.post(f"/api/v1/webhooks/{webhook_id}/rotate-secret").status_code == 404
    assert other.post(f"/api/v1/webhooks/{webhook_id}/test").status_code == 404
    assert other.get(f"/api/v1/webhooks/{webhook_id}/deliveries").status_code == 404
    assert other.delete(f"/api/v1/webhooks/{webhook_id}").status_code == 404
    assert other.get("/api/v1/webhooks").json()["count"] == 0
    assert Webhook.objects.filter(pk=webhook_id, enabled=True).exists()


def test_body_that_is_not_json_is_a_clear_400(api):
    response = api.post("/api/v1/webhooks", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]


def test_unknown_api_path_is_json_404(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.json()["error"] == "not_found"
