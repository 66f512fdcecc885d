"""Every operation that takes a body refuses a field it does not know with a 400 naming it, found by
walking the OpenAPI schema itself (a new endpoint is covered the day it is added), nested objects
included; free-form values (an event's `data`, a conversation's `source`) stay free."""

import pytest
from rest_framework.test import APIClient

from deliveries.models import Delivery, Event
from domain.models import Conversation, Lead, Message, Ticket
from inbound.models import Integration, KnowledgeEntry
from subscriptions.models import Webhook

pytestmark = pytest.mark.django_db

WRITES = {"post", "put", "patch"}
EXTRA = "unexpected_field"
STORED = [Webhook, Event, Delivery, Conversation, Message, Ticket, Lead, Integration, KnowledgeEntry]


@pytest.fixture(scope="module")
def schema():
    response = APIClient().get("/api/v1/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def write_operations(schema):
    for path, items in schema["paths"].items():
        for method, operation in items.items():
            if method in WRITES:
                yield path, method, operation


def resolve(schema, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def request_body(schema, operation) -> tuple[dict, dict]:
    """(its JSON schema, its documented example); ({}, {}) for an operation without a body."""
    media = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if media is None:
        return {}, {}
    return resolve(schema, media["schema"]), dict(media.get("example", {}))


def closed_objects(schema, body_schema: dict) -> list[str]:
    """The body's properties that are objects with named fields of their own (a visitor)."""
    return [name for name, prop in body_schema.get("properties", {}).items() if "properties" in resolve(schema, prop)]


@pytest.fixture
def path_ids(api, site, receiver):
    """An object of this site for every id a path of the API can name."""
    webhook = api.post("/api/v1/webhooks", {"url": receiver.url}, format="json").json()
    event = api.post("/api/v1/events", {"event": "ticket.created", "data": {"ticket_id": "t"}}, format="json").json()
    conversation = api.post("/api/v1/conversations", {"channel": "web"}, format="json").json()
    ticket = api.post("/api/v1/tickets", {"subject": "Refund"}, format="json").json()
    integration = api.post("/api/v1/integrations", {"name": "chat"}, format="json").json()
    entry = api.post("/api/v1/knowledge", {"question": "Q?", "answer": "A."}, format="json").json()
    return {
        "webhook_id": webhook["id"],
        "delivery_id": event["deliveries"][0]["id"],
        "conversation_id": conversation["id"],
        "ticket_id": ticket["id"],
        "integration_id": integration["id"],
        "entry_id": entry["id"],
    }


def stored_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in STORED}


def refused_for(response, field: str) -> str:
    assert response.status_code == 400, (response.status_code, response.content)
    body = response.json()
    assert body["error"] == "invalid_request"
    assert field in body["fields"], body
    assert body["fields"][field][0].startswith("unknown field"), body
    assert field in body["message"], body
    return body["fields"][field][0]


def test_every_write_operation_of_the_schema_refuses_an_unknown_field_naming_it(schema, api, path_ids):
    checked = []
    for path, method, operation in write_operations(schema):
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        missing = [name for name in names if name not in path_ids]
        assert not missing, f"{method.upper()} {path}: make an object for {missing} in path_ids"
        url = path.format(**{name: path_ids[name] for name in names})
        body_schema, example = request_body(schema, operation)
        bodies = [({**example, EXTRA: 1}, EXTRA)]
        for name in closed_objects(schema, body_schema):
            bodies.append(({**example, name: {**example.get(name, {}), EXTRA: 1}}, f"{name}.{EXTRA}"))
        for body, field in bodies:
            before = stored_counts()
            response = getattr(api, method)(url, body, format="json")
            message = refused_for(response, field)
            assert stored_counts() == before, f"{method.upper()} {path} stored something it refused"
            known = body_schema.get("properties") if field == EXTRA else None
            if known:
                assert all(name in message for name in known), f"{method.upper()} {path}: {message}"
            checked.append(f"{method.upper()} {path} {field}")
    # The walk reached the operations this test was written against, and whatever came since.
    assert {
        "POST /api/v1/webhooks/{webhook_id}/rotate-secret unexpected_field",
        "PATCH /api/v1/webhooks/{webhook_id} unexpected_field",
        "POST /api/v1/conversations visitor.unexpected_field",
        "POST /api/v1/deliveries/{delivery_id}/retry unexpected_field",
    } <= set(checked)


def test_every_request_body_in_the_schema_is_a_closed_object_and_free_form_values_stay_open(schema):
    for path, method, operation in write_operations(schema):
        body_schema, _ = request_body(schema, operation)
        if body_schema:
            assert body_schema["additionalProperties"] is False, f"{method.upper()} {path}"
            for name in closed_objects(schema, body_schema):
                assert resolve(schema, body_schema["properties"][name])["additionalProperties"] is False
    events = resolve(schema, schema["paths"]["/api/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"])
    assert events["properties"]["data"]["additionalProperties"] == {}


def test_a_misspelt_grace_period_is_refused_and_the_secret_is_not_rotated(api, site, webhook_factory):
    webhook = webhook_factory(site=site)
    response = api.post(f"/api/v1/webhooks/{webhook.id}/rotate-secret", {"grace_period_seconds": 0}, format="json")
    assert refused_for(response, "grace_period_seconds") == "unknown field; the fields are grace_seconds"
    assert response.json()["message"] == "grace_period_seconds: unknown field; the fields are grace_seconds"
    unchanged = Webhook.objects.get(pk=webhook.pk)
    assert (unchanged.secret, unchanged.previous_secret) == (webhook.secret, webhook.previous_secret)
    assert "whsec_" not in response.content.decode(), "no secret in an error"


def test_read_only_fields_in_a_body_are_refused_as_read_only_and_all_named(api):
    body = {"url": "https://crm.example.com/hooks", "id": "wh_mine", "secret": "whsec_mine", "colour": "red"}
    response = api.post("/api/v1/webhooks", body, format="json")
    fields = response.json()["fields"]
    assert response.status_code == 400 and set(fields) == {"id", "secret", "colour"}
    assert (
        fields["id"]
        == fields["secret"]
        == [
            "unknown field (read-only here); the fields are url, events, format, exchange, routing_key, ordering, "
            "description, enabled, headers, auth, filter, rate_limit, tls_client_cert, tls_client_key, tls_ca_cert"
        ]
    )
    assert fields["colour"] == [
        "unknown field; the fields are url, events, format, exchange, routing_key, ordering, description, enabled, "
        "headers, auth, filter, rate_limit, tls_client_cert, tls_client_key, tls_ca_cert"
    ]
    assert response.json()["message"].startswith("id, secret: unknown field (read-only here)")
    assert not Webhook.objects.exists()


def test_an_unknown_field_is_named_together_with_a_missing_required_one(api):
    response = api.post("/api/v1/events", {"evnt": "ticket.created", "data": {}}, format="json")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["evnt", "event"]
    assert response.json()["message"].startswith("evnt: unknown field; the fields are event, data, idempotency_key")


def test_a_patch_refuses_an_unknown_field_and_changes_nothing(api, site, webhook_factory):
    webhook = webhook_factory(site=site, enabled=True)
    response = api.patch(f"/api/v1/webhooks/{webhook.id}", {"enabled": False, "enabeld": False}, format="json")
    refused_for(response, "enabeld")
    assert Webhook.objects.get(pk=webhook.pk).enabled is True


def test_free_form_values_keep_any_keys(api):
    data = {"ticket_id": "t", EXTRA: 1, "id": "mine", "nested": {"secret": True}}
    published = api.post("/api/v1/events", {"event": "ticket.created", "data": data}, format="json")
    assert published.status_code == 201, published.json()
    assert published.json()["data"] == data
    source = {"chatId": 123456789, "username": "john_doe"}
    started = api.post("/api/v1/conversations", {"channel": "telegram", "source": source}, format="json")
    assert started.status_code == 201, started.json()
    assert started.json()["source"] == source


@pytest.mark.parametrize("body", [None, {}])
def test_an_action_without_a_body_takes_none_or_an_empty_object(api, body):
    conversation = api.post("/api/v1/conversations", {"channel": "web"}, format="json").json()
    kwargs = {} if body is None else {"data": body, "format": "json"}
    response = api.post(f"/api/v1/conversations/{conversation['id']}/close", **kwargs)
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "closed"
