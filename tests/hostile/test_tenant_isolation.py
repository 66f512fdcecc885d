"""Every endpoint that takes an id answers 404 to another site's key, and no list shows another
site's objects. The endpoints come from the OpenAPI schema, so a new one is covered (or this test
says which id it needs)."""

import re

import pytest
from django.db import transaction

from deliveries.models import Delivery, Event
from tests.conftest import client_for
from tests.factories import SiteFactory

pytestmark = pytest.mark.django_db

CONVERSATION = {"channel": "web", "visitor": {"name": "Ada", "email": "ada@example.com", "phone": None}}


@pytest.fixture
def owner_objects(api, site):
    """One object of every kind, owned by `site`, created through the API as an integrator would."""
    webhook = api.post("/api/v1/webhooks", {"url": "https://crm.example.com/h", "events": ["*"]}, format="json").json()
    conversation = api.post("/api/v1/conversations", CONVERSATION, format="json").json()
    ticket = api.post("/api/v1/tickets", {"conversation_id": conversation["id"], "subject": "Help"}, format="json").json()
    event = api.post(
        "/api/v1/events", {"event": "webhook.test", "data": {"webhook_id": webhook["id"], "message": "hi"}}, format="json"
    ).json()
    delivery = Delivery.objects.filter(event_id=event["id"]).first()
    integration = api.post(
        "/api/v1/integrations", {"name": "Support", "api_url": "https://api.chat2desk.com", "api_token": "t"}, format="json"
    ).json()
    entry = api.post("/api/v1/knowledge", {"question": "Open on Sundays?", "answer": "No."}, format="json").json()
    api.put("/api/v1/portal-settings", {"allowed_origins": ["https://owner.example.com"]}, format="json")
    return {
        "webhook_id": webhook["id"],
        "conversation_id": conversation["id"],
        "ticket_id": ticket["id"],
        "event_id": event["id"],
        "delivery_id": delivery.id,
        "integration_id": integration["id"],
        "entry_id": entry["id"],
    }


def operations(api_client):
    schema = api_client.get("/api/v1/schema", HTTP_ACCEPT="application/json").json()
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if operation.get("security") != [{}]:
                yield path, method


def test_another_sites_ids_are_404_on_every_endpoint(api_client, owner_objects):
    stranger = client_for(SiteFactory())
    checked = 0
    for path, method in operations(api_client):
        params = re.findall(r"{(\w+)}", path)
        if not params:
            continue
        missing = [p for p in params if p not in owner_objects]
        assert not missing, f"{method.upper()} {path}: give the test an id for {missing}"
        url = path.format(**owner_objects)
        with transaction.atomic():
            response = getattr(stranger, method)(url, {}, format="json")
            transaction.set_rollback(True)
        assert response.status_code == 404, f"{method.upper()} {url} as another site: {response.status_code}"
        checked += 1
    assert checked >= 10


def test_lists_never_show_another_sites_objects(api_client, owner_objects):
    stranger = client_for(SiteFactory())
    listed = []
    for path, method in operations(api_client):
        if method != "get" or "{" in path or path.endswith(("/schema", "/docs", "/event-types")):
            continue
        response = stranger.get(path)
        assert response.status_code == 200, path
        if path.endswith("/portal-settings"):  # one object per site, not a list
            assert response.json() == {"allowed_origins": []}, "another site's portal settings"
            continue
        assert response.json()["count"] == 0, f"GET {path} shows another site's objects"
        listed.append(path)
    assert {"/api/v1/webhooks", "/api/v1/deliveries", "/api/v1/integrations", "/api/v1/knowledge"} <= set(listed)
    assert Event.objects.filter(pk=owner_objects["event_id"]).exists()
