"""Every format end to end: the domain API publishes, a real Celery worker sends to a local
receiver, and the receiver verifies with an independent implementation (the documents' Node code
for agentbot, leads and chatzuri; the standardwebhooks package for standard)."""

import json

import jsonschema
import pytest
from standardwebhooks import Webhook as StandardWebhook

from deliveries.models import Delivery
from subscriptions.event_types import CATALOGUE
from tests.deliveries.test_end_to_end import wait_for_status
from tests.support.node import node_verify

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ACCEPTED = (200, b'{"status":"accepted"}')


def post(api, path: str, body: dict | None = None) -> dict:
    response = api.post(f"/api/v1/{path}", body or {}, format="json")
    assert response.status_code in (200, 201), response.json()
    return response.json()


def rotate(api, webhook) -> tuple[str, str]:
    """Rotate with a grace period; returns (old secret, new secret)."""
    old = webhook.secret
    response = api.post(f"/api/v1/webhooks/{webhook.id}/rotate-secret", {"grace_seconds": 600}, format="json")
    return old, response.json()["secret"]


def by_delivery(webhook) -> dict[str, Delivery]:
    return {d.event.type: d for d in Delivery.objects.filter(webhook=webhook).select_related("event")}


def test_agentbot_format_delivers_the_domains_events_signed_as_the_document_says(api, site, webhook_factory, receiver, workers):
    webhook = webhook_factory(site=site, url=receiver.url, events=["*"])
    workers.start(concurrency=1)

    conversation = post(api, "conversations", {"channel": "web", "page_url": "https://example.com/prix"})
    post(api, f"conversations/{conversation['id']}/messages", {"sender_type": "visitor", "body": "Ça coûte combien ? 💶"})

    requests = receiver.wait_for(2)
    assert all(r["ok"] and r["reserialised_equal"] for r in node_verify("agentbot", webhook.secret, requests))
    received = {r.headers["x-agentbot-event"]: json.loads(r.body) for r in requests}
    assert set(received) == {"conversation.created", "message.created"}
    for event_type, body in received.items():
        assert (body["event"], body["site_id"]) == (event_type, site.id)
        jsonschema.Draft202012Validator(CATALOGUE[event_type].schema).validate(body["data"])
    assert received["message.created"]["data"]["body"] == "Ça coûte combien ? 💶"
    for delivery in by_delivery(webhook).values():
        wait_for_status(delivery.id, "succeeded")


def test_chatzuri_format_sends_message_received_and_lead_submit_signed_with_sha1(api, site, webhook_factory, receiver, workers):
    receiver.responder = lambda n: ACCEPTED
    webhook = webhook_factory(site=site, url=receiver.url, events=["message.created", "lead.submit"], format="chatzuri")
    workers.start(concurrency=1)

    telegram = {"chatId": 123456789, "username": "john_doe"}
    conversation = post(api, "conversations", {"channel": "telegram", "source": telegram})
    post(api, f"conversations/{conversation['id']}/messages", {"sender_type": "visitor", "body": "Öffnungszeiten?"})
    post(api, "leads", {"conversation_id": conversation["id"], "first_name": "John", "email": "john@example.com"})

    requests = receiver.wait_for(2)
    assert all(r["ok"] and r["reserialised_equal"] for r in node_verify("chatzuri", webhook.secret, requests))
    bodies = {json.loads(r.body)["eventType"]: r.body for r in requests}
    expected_message = {
        "eventType": "message.received",
        "channel": "telegram",
        "agentId": site.id,
        "payload": {**telegram, "message": "Öffnungszeiten?", "conversationId": conversation["id"]},
    }
    expected_lead = {
        "eventType": "lead.submit",
        "agentId": site.id,
        "payload": {
            "conversationId": conversation["id"],
            "customerEmail": "john@example.com",
            "customerName": "John",
            "customerPhone": None,
        },
    }
    for expected in (expected_message, expected_lead):
        assert bodies[expected["eventType"]] == json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()
    for delivery in by_delivery(webhook).values():
        wait_for_status(delivery.id, "succeeded")


def test_leads_format_succeeds_only_on_the_documented_bodies_and_signs_with_both_secrets_in_grace(
    api, site, webhook_factory, receiver, workers
):
    answers = [b'{"status":"ok"}', b'{"status":"Success: test request received"}', b'{"status":"success"}']
    receiver.responder = lambda n: (200, answers[n - 1])
    webhook = webhook_factory(site=site, url=receiver.url, events=["*"], format="leads")
    old, new = rotate(api, webhook)
    workers.start(concurrency=1, AGENTBOT_RETRY_SCHEDULE="0,1,3")

    conversation = post(api, "conversations", {"channel": "web"})
    lead = {"conversation_id": conversation["id"], "first_name": "David", "last_name": "García", "email": "d@example.com"}
    post(api, "leads", {**lead, "content": "test", "uri": "www.google.com"})
    first, retry = receiver.wait_for(2)
    lead_delivery = wait_for_status(by_delivery(webhook)["lead.submit"].id, "succeeded")
    post(api, "appointments", {**lead, "content": "Tuesday 10:00"})
    appointment_delivery = wait_for_status(by_delivery(webhook)["appointment.created"].id, "succeeded")

    requests = receiver.wait_for(3)
    assert retry.at - first.at >= 0.95, "the retry waits for the schedule's next step"
    assert [(a.status_code, a.succeeded) for a in lead_delivery.attempts.order_by("number")] == [(200, False), (200, True)]
    assert "different response body" in lead_delivery.attempts.get(number=1).error
    assert appointment_delivery.attempt_count == 1
    for secret in (new, old):
        assert all(r["ok"] and r["reserialised_equal"] for r in node_verify("leads", secret, requests)), secret
    record = json.loads(requests[2].body)
    assert record == {
        "SerialNumber": site.id,
        "Type": "Appointment",
        "FirstName": "David",
        "LastName": "García",
        "Email": "d@example.com",
        "PhoneNumber": "",
        "CreateTime": record["CreateTime"],
        "Content": "Tuesday 10:00",
        "SessionID": conversation["number"],
        "URI": "",
    }
    assert list(record) == list(json.loads(requests[0].body)), "every record has the document's key order"


def test_standard_format_verifies_with_the_standardwebhooks_package_under_either_secret_in_grace(
    api, site, webhook_factory, receiver, workers
):
    webhook = webhook_factory(site=site, url=receiver.url, events=["ticket.created", "ticket.updated"], format="standard")
    old, new = rotate(api, webhook)
    workers.start(concurrency=1)

    ticket = post(api, "tickets", {"subject": "Réclamation"})
    assert api.patch(f"/api/v1/tickets/{ticket['id']}", {"priority": "urgent"}, format="json").status_code == 200

    requests = receiver.wait_for(2)
    deliveries = by_delivery(webhook)
    for request in requests:
        payloads = [StandardWebhook(secret).verify(request.body, request.headers) for secret in (new, old)]
        assert payloads[0] == payloads[1] == json.loads(request.body)
        event_type = payloads[0]["type"]
        assert request.headers["webhook-id"] == deliveries[event_type].id
        jsonschema.Draft202012Validator(CATALOGUE[event_type].schema).validate(payloads[0]["data"])
    updated = next(json.loads(r.body) for r in requests if json.loads(r.body)["type"] == "ticket.updated")
    assert updated["data"]["changes"] == {"priority": {"from": "normal", "to": "urgent"}}
    for delivery in deliveries.values():
        wait_for_status(delivery.id, "succeeded")
