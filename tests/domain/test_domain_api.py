"""The agent's domain API: each change publishes its event with the catalogue's data, in the same
transaction; the catalogue's JSON Schemas hold for its examples and for what is really published."""

import jsonschema
import pytest
from django.db import transaction

from deliveries.models import Delivery, Event
from domain import services
from domain.models import Conversation
from subscriptions.event_types import CATALOGUE, OPERATIONAL_EVENTS, SUBSCRIBABLE
from tests.conftest import client_for
from tests.factories import SiteFactory

pytestmark = pytest.mark.django_db

TELEGRAM = {
    "channel": "telegram",
    "visitor": {"name": "John Doe", "email": None},
    "source": {"chatId": 123456789, "username": "john_doe"},
}


def validator(event_type: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(CATALOGUE[event_type].schema)


def published(site, event_type: str) -> dict:
    """The data of the one `event_type` event of `site`, checked against the catalogue's schema."""
    (event,) = Event.objects.filter(site=site, type=event_type)
    validator(event_type).validate(event.data)
    return event.data


def post(api, path: str, body: dict | None = None, status: int = 201) -> dict:
    response = api.post(f"/api/v1/{path}", body or {}, format="json")
    assert response.status_code == status, response.json()
    return response.json()


@pytest.fixture
def conversation(api):
    return post(api, "conversations", TELEGRAM)


# --- the catalogue ----------------------------------------------------------------------------
@pytest.mark.parametrize("event_type", list(CATALOGUE))
def test_catalogue_example_validates_against_its_own_schema(event_type):
    jsonschema.Draft202012Validator.check_schema(CATALOGUE[event_type].schema)
    validator(event_type).validate(CATALOGUE[event_type].example)


@pytest.mark.parametrize(
    ("event_type", "change"),
    [
        ("message.created", {"sender_type": "bot"}),
        ("message.created", {"body": ""}),
        ("message.created", {"channel": "telegram", "source": {"sessionId": "session_abc"}}),
        ("message.created", {"surprise": 1}),
        ("conversation.created", {"visitor": {"name": "Ada"}}),
        ("ticket.updated", {"changes": {}}),
        ("ticket.updated", {"changes": {"colour": {"from": "red", "to": "blue"}}}),
        ("lead.submit", {"session_id": "31305"}),
        ("appointment.created", {"appointment_id": "lead_123"}),
    ],
)
def test_schemas_refuse_data_that_breaks_the_documented_shape(event_type, change):
    assert not validator(event_type).is_valid({**CATALOGUE[event_type].example, **change})


def test_event_types_endpoint_serves_each_type_with_description_schema_and_example(api):
    response = api.get("/api/v1/event-types")
    assert response.status_code == 200
    served = {t["name"]: t for t in response.json()["results"]}
    assert list(served) == list(CATALOGUE)
    for name, event_type in CATALOGUE.items():
        assert served[name]["description"] == event_type.description
        assert served[name]["schema"] == event_type.schema
        assert served[name]["example"] == event_type.example


# --- conversations and messages ----------------------------------------------------------------
def test_starting_a_conversation_publishes_conversation_created(api, site):
    conversation = post(api, "conversations", {**TELEGRAM, "page_url": ""})

    assert conversation["id"].startswith("conv_") and conversation["number"] == 1
    assert conversation["status"] == "open"
    assert published(site, "conversation.created") == {
        "conversation_id": conversation["id"],
        "channel": "telegram",
        "visitor": {"name": "John Doe", "email": None, "phone": None},
        "page_url": None,
        "source": {"chatId": 123456789, "username": "john_doe"},
    }


def test_conversation_numbers_count_up_per_site(api, site):
    numbers = [post(api, "conversations", {"channel": "web"})["number"] for _ in range(3)]
    other = post(client_for(SiteFactory()), "conversations", {"channel": "web"})["number"]
    assert (numbers, other) == ([1, 2, 3], 1)


def test_a_message_publishes_message_created_with_the_documented_fields(api, site, conversation):
    message = post(api, f"conversations/{conversation['id']}/messages", {"sender_type": "visitor", "body": "Hi 👋"})

    assert message["id"].startswith("msg_")
    assert published(site, "message.created") == {
        "conversation_id": conversation["id"],
        "message_id": message["id"],
        "sender_type": "visitor",
        "body": "Hi 👋",
        "visitor_email": None,
        "visitor_name": "John Doe",
        "channel": "telegram",
        "source": {"chatId": 123456789, "username": "john_doe"},
        "page_url": None,
    }


def test_handoff_publishes_needs_human_with_the_reason(api, site, conversation):
    body = post(api, f"conversations/{conversation['id']}/handoff", {"reason": "Wants a refund"}, status=200)

    assert body["needs_human_at"] and body["handoff_reason"] == "Wants a refund"
    assert published(site, "conversation.needs_human") == {
        "conversation_id": conversation["id"],
        "channel": "telegram",
        "visitor": {"name": "John Doe", "email": None, "phone": None},
        "reason": "Wants a refund",
    }


def test_closing_publishes_conversation_closed_once_and_refuses_later_messages(api, site, conversation):
    path = f"conversations/{conversation['id']}"
    assert post(api, f"{path}/close", status=200)["status"] == "closed"
    assert post(api, f"{path}/close", status=200)["status"] == "closed"

    assert published(site, "conversation.closed") == {
        "conversation_id": conversation["id"],
        "channel": "telegram",
        "visitor": {"name": "John Doe", "email": None, "phone": None},
    }
    # A well-formed request the closed conversation's state refuses: 409, not 400.
    refused = post(api, f"{path}/messages", {"sender_type": "agent", "body": "Still there?"}, status=409)
    assert "closed" in refused["message"] and "POST /api/v1/conversations" in refused["message"]
    assert post(api, f"{path}/handoff", status=409)["error"] == "conflict"
    assert post(api, f"{path}/resume", status=409)["error"] == "conflict"


# --- tickets ----------------------------------------------------------------------------------
def test_filing_a_ticket_publishes_ticket_created(api, site, conversation):
    ticket = post(api, "tickets", {"conversation_id": conversation["id"], "subject": "Refund", "priority": "high"})

    assert ticket["id"].startswith("tkt_")
    assert published(site, "ticket.created") == {
        "ticket_id": ticket["id"],
        "conversation_id": conversation["id"],
        "subject": "Refund",
        "status": "open",
        "priority": "high",
        "assignee": None,
    }


def test_changing_a_ticket_publishes_what_changed_and_nothing_when_nothing_did(api, site):
    ticket = post(api, "tickets", {"subject": "Refund"})
    path = f"/api/v1/tickets/{ticket['id']}"

    changed = api.patch(path, {"status": "pending", "assignee": "sam@example.com", "priority": "normal"}, format="json")
    unchanged = api.patch(path, {"status": "pending"}, format="json")

    assert changed.status_code == unchanged.status_code == 200
    assert unchanged.json()["assignee"] == "sam@example.com"
    assert published(site, "ticket.updated") == {
        "ticket_id": ticket["id"],
        "conversation_id": None,
        "subject": "Refund",
        "status": "pending",
        "priority": "normal",
        "assignee": "sam@example.com",
        "changes": {"status": {"from": "open", "to": "pending"}, "assignee": {"from": None, "to": "sam@example.com"}},
    }


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, "", "send at least one of subject, status, priority, assignee"),
        ({"status": "done"}, "status", '"done" is not a valid choice'),
        ({"owner": "sam"}, "owner", "unknown field"),
    ],
)
def test_a_wrong_ticket_change_is_refused_with_a_message(api, body, field, words):
    ticket = post(api, "tickets", {"subject": "Refund"})
    response = api.patch(f"/api/v1/tickets/{ticket['id']}", body, format="json")
    assert response.status_code == 400
    assert words in response.json()["message"] and field in response.json()["fields"]


# --- leads and appointments -------------------------------------------------------------------
def test_a_lead_publishes_lead_submit_and_introduces_the_visitor_to_the_conversation(api, site):
    conversation = post(api, "conversations", {"channel": "web", "page_url": "https://example.com/pricing"})
    lead = post(
        api,
        "leads",
        {
            "conversation_id": conversation["id"],
            "first_name": "David",
            "last_name": "Garcia",
            "email": "david@example.com",
            "content": "Wants a demo",
            "uri": "https://example.com/pricing",
        },
    )

    assert lead["id"].startswith("lead_")
    assert published(site, "lead.submit") == {
        "lead_id": lead["id"],
        "conversation_id": conversation["id"],
        "session_id": conversation["number"],
        "first_name": "David",
        "last_name": "Garcia",
        "email": "david@example.com",
        "phone": None,
        "content": "Wants a demo",
        "uri": "https://example.com/pricing",
    }
    post(api, f"conversations/{conversation['id']}/messages", {"sender_type": "visitor", "body": "Thanks"})
    message = published(site, "message.created")
    assert (message["visitor_name"], message["visitor_email"]) == ("David Garcia", "david@example.com")


def test_an_appointment_publishes_appointment_created(api, site):
    appointment = post(api, "appointments", {"first_name": "Ada", "phone": "+441234", "content": "Tuesday 10:00"})

    assert appointment["id"].startswith("apt_")
    assert published(site, "appointment.created") == {
        "appointment_id": appointment["id"],
        "conversation_id": None,
        "session_id": None,
        "first_name": "Ada",
        "last_name": None,
        "email": None,
        "phone": "+441234",
        "content": "Tuesday 10:00",
        "uri": None,
    }


# --- bad input and site isolation ------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body", "field", "words"),
    [
        ("conversations", {"channel": "fax"}, "channel", '"fax" is not a valid choice'),
        (
            "conversations",
            {"channel": "telegram", "source": {"sessionId": "s"}},
            "source",
            "a telegram source has chatId, username",
        ),
        ("conversations", {"channel": "telegram", "source": {"chatId": 1.5}}, "source.chatId", "integer or string"),
        ("conversations", {"channel": "web", "source": {"sessionId": "a\u0000b"}}, "source.sessionId", "NUL"),
        ("conversations", {"channel": "web", "visitor": {"mail": "a@b.c"}}, "visitor.mail", "unknown field"),
        ("conversations", {"channel": "web", "visitor": {"email": "not-an-email"}}, "visitor.email", "valid email"),
        ("leads", {"first_name": "Ada"}, "email", "give an email or a phone number"),
        (
            "appointments",
            {"email": "ada@example.com", "conversation_id": "conv_nope"},
            "conversation_id",
            "no conversation conv_nope",
        ),
        ("tickets", {"status": "open"}, "subject", "required"),
    ],
)
def test_bad_input_is_a_400_that_says_what_to_fix(api, path, body, field, words):
    response = api.post(f"/api/v1/{path}", body, format="json")
    assert response.status_code == 400
    assert words in response.json()["message"] and field in response.json()["fields"]
    assert not Event.objects.exists()


def test_an_integer_javascript_would_change_is_refused_and_nothing_is_stored(api):
    body = {"channel": "telegram", "source": {"chatId": 2**53 + 1}}
    response = api.post("/api/v1/conversations", body, format="json")
    assert response.status_code == 400
    assert "data.source.chatId" in response.json()["message"] and "safe integer" in response.json()["message"]
    assert not Conversation.objects.exists() and not Event.objects.exists()


def test_a_message_that_is_not_a_valid_message_is_a_400(api, conversation):
    path = f"/api/v1/conversations/{conversation['id']}/messages"
    for body, words in [({"sender_type": "bot", "body": "x"}, "sender_type"), ({"sender_type": "ai", "body": "  "}, "blank")]:
        response = api.post(path, body, format="json")
        assert response.status_code == 400 and words in response.json()["message"]


def test_another_sites_records_are_not_found(api, site):
    other = client_for(SiteFactory())
    theirs = post(other, "conversations", {"channel": "web"})
    their_ticket = post(other, "tickets", {"subject": "Theirs"})

    for path in ("messages", "handoff", "close"):
        response = api.post(f"/api/v1/conversations/{theirs['id']}/{path}", {"sender_type": "ai", "body": "x"}, format="json")
        assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert api.patch(f"/api/v1/tickets/{their_ticket['id']}", {"status": "solved"}, format="json").status_code == 404
    refused = post(api, "tickets", {"subject": "Mine", "conversation_id": theirs["id"]}, status=400)
    assert "no conversation" in refused["message"]
    assert not Event.objects.filter(site=site).exists()
    assert Conversation.objects.get(pk=theirs["id"]).status == "open"


# --- transactions and fan-out -----------------------------------------------------------------
def test_a_rolled_back_change_stores_and_sends_nothing(site, webhook_factory, django_capture_on_commit_callbacks):
    webhook_factory(site=site)
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                conversation = services.conversation_create(site=site, channel="web")
                services.message_create(conversation=conversation, sender_type="visitor", body="Hello")
                raise RuntimeError("the caller's next step failed")
    assert callbacks == []
    assert not Conversation.objects.exists() and not Event.objects.exists() and not Delivery.objects.exists()


def test_star_subscription_gets_every_event_and_the_test_ping_reaches_every_webhook(api, site, webhook_factory):
    everything = webhook_factory(site=site, events=["*"])
    tickets_only = webhook_factory(site=site, events=["ticket.created"])
    leads_crm = webhook_factory(site=site, events=["*"], format="leads")

    conversation = post(api, "conversations", {"channel": "web"})
    path = f"conversations/{conversation['id']}"
    post(api, f"{path}/messages", {"sender_type": "ai", "body": "Hello"})
    post(api, f"{path}/handoff", status=200)
    ticket = post(api, "tickets", {"conversation_id": conversation["id"], "subject": "Call back"})
    assert api.patch(f"/api/v1/tickets/{ticket['id']}", {"status": "solved"}, format="json").status_code == 200
    post(api, "leads", {"conversation_id": conversation["id"], "email": "ada@example.com"})
    post(api, "appointments", {"conversation_id": conversation["id"], "email": "ada@example.com"})
    # No endpoint merges: the webhook channel's mergeIdentity does, through the domain service.
    other = Conversation.objects.get(pk=post(api, "conversations", {"channel": "web"})["id"])
    services.conversation_merge(source=other, target=Conversation.objects.get(pk=conversation["id"]))
    post(api, f"{path}/close", status=200)
    for webhook in (everything, tickets_only, leads_crm):
        assert api.post(f"/api/v1/webhooks/{webhook.id}/test").status_code == 202

    def received(webhook) -> set[str]:
        return set(Delivery.objects.filter(webhook=webhook).values_list("event__type", flat=True))

    domain_events = {name for name in SUBSCRIBABLE if name not in OPERATIONAL_EVENTS}
    assert received(everything) == domain_events | {"webhook.test"}
    assert received(tickets_only) == {"ticket.created", "webhook.test"}
    assert received(leads_crm) == {"lead.submit", "appointment.created", "webhook.test"}
    for event in Event.objects.filter(site=site):
        validator(event.type).validate(event.data)


def test_openapi_schema_documents_the_domain_endpoints(api_client):
    paths = api_client.get("/api/v1/schema", HTTP_ACCEPT="application/json").json()["paths"]
    for path in (
        "/api/v1/conversations",
        "/api/v1/conversations/{conversation_id}/messages",
        "/api/v1/conversations/{conversation_id}/handoff",
        "/api/v1/conversations/{conversation_id}/close",
        "/api/v1/tickets",
        "/api/v1/tickets/{ticket_id}",
        "/api/v1/leads",
        "/api/v1/appointments",
    ):
        assert path in paths, f"{path} is missing from the OpenAPI schema"


def test_a_whatsapp_or_email_conversation_takes_from_from_the_visitors_phone_or_email_when_it_learns_them(site):
    whatsapp = services.conversation_create(site=site, channel="whatsapp")
    email = services.conversation_create(site=site, channel="email", visitor_email="customer@example.com")
    given = services.conversation_create(site=site, channel="whatsapp", visitor_phone="+1 555", source={"from": "+1234567890"})
    assert (whatsapp.source, email.source, given.source) == ({}, {"from": "customer@example.com"}, {"from": "+1234567890"})

    services.lead_create(site=site, conversation_id=whatsapp.id, phone="+1234567890")
    whatsapp.refresh_from_db()
    assert (whatsapp.visitor_phone, whatsapp.source) == ("+1234567890", {"from": "+1234567890"})
    telegram = services.conversation_create(site=site, channel="telegram", visitor_phone="+1234567890")
    assert telegram.source == {}, "a Telegram chat id is not a phone number"
