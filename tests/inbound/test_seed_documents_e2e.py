"""Seeds 000 and 001 end to end with their own sample payloads: a Chat2Desk message reaches a
chatzuri subscriber with the channel's identifiers, `message.received` is a subscription, and the
document's sample close_dialog that matches no session is kept as unmatched."""

import json

import pytest

from domain.models import Conversation
from tests.deliveries.test_formats_e2e import ACCEPTED
from tests.deliveries.test_formats_e2e import post as api_post
from tests.inbound.test_chat2desk_e2e import HOURS, post, sent_to_chat2desk, settled
from tests.support.node import seed_verify

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Seed 000's inbound payload, with the `client` object Chat2Desk sends beside it.
SEED_MESSAGE = {
    "text": "Hello, I need help with my order",
    "client_id": "12345678",
    "channel_id": "987654",
    "transport": "whatsapp",
}
# Seed 000's status payload, as the document shows it.
SEED_CLOSE = {"hook_type": "close_dialog", "request_id": 12345, "dialog_id": 67890}


def subscribe_chatzuri(api, receiver, events: list[str]) -> tuple[str, str]:
    response = api.post("/api/v1/webhooks", {"url": receiver.url, "events": events, "format": "chatzuri"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["events"] == events, "stored as given"
    return response.json()["id"], response.json()["secret"]


def test_chat2desk_messages_reach_a_message_received_subscriber_with_the_channels_identifiers(
    api, site, integration, knowledge, chat2desk, receiver, workers
):
    receiver.responder = lambda n: ACCEPTED
    _, secret = subscribe_chatzuri(api, receiver, ["message.received"])
    workers.start()

    settled(post(integration, {**SEED_MESSAGE, "client": {"id": 1, "phone": "1234567890", "name": "Ada"}}))
    telegram = {**SEED_MESSAGE, "client_id": "555", "transport": "telegram", "text": HOURS}
    settled(post(integration, {**telegram, "client": {"id": 2, "phone": "[tg] 123456789", "name": "John"}}))
    sent_to_chat2desk(chat2desk, 1)  # the agent answered the telegram question: not a message.received

    requests = receiver.wait_for(2)
    assert seed_verify("chatzuri", secret, requests) == [True, True]
    bodies = {json.loads(r.body)["channel"]: json.loads(r.body) for r in requests}
    whatsapp = Conversation.objects.get(integration=integration, external_id="12345678")
    assert bodies["whatsapp"] == {
        "eventType": "message.received",
        "channel": "whatsapp",
        "agentId": site.id,
        "payload": {"from": "+1234567890", "message": SEED_MESSAGE["text"], "conversationId": whatsapp.id},
    }
    assert bodies["telegram"]["payload"]["chatId"] == 123456789
    assert (whatsapp.visitor_name, whatsapp.visitor_phone) == ("Ada", "+1234567890")
    # Only visitors' messages: the agent's answer (a message.created) went to no one here.
    assert [json.loads(r.body)["eventType"] for r in receiver.received] == ["message.received"] * 2


def test_an_api_conversation_with_the_visitors_phone_or_email_names_them_in_from(api, site, receiver, workers):
    receiver.responder = lambda n: ACCEPTED
    _, secret = subscribe_chatzuri(api, receiver, ["message.created"])
    workers.start(concurrency=1)

    whatsapp = api_post(api, "conversations", {"channel": "whatsapp", "visitor": {"phone": "+1234567890"}})
    email = api_post(api, "conversations", {"channel": "email", "visitor": {"email": "customer@example.com"}})
    api_post(
        api, f"conversations/{whatsapp['id']}/messages", {"sender_type": "visitor", "body": "Hello, I need help with my order"}
    )
    api_post(api, f"conversations/{whatsapp['id']}/messages", {"sender_type": "agent", "body": "Sure!"})
    api_post(api, f"conversations/{email['id']}/messages", {"sender_type": "visitor", "body": "Order inquiry"})

    requests = receiver.wait_for(3)
    assert seed_verify("chatzuri", secret, requests) == [True, True, True]
    received = [json.loads(r.body) for r in requests]
    payloads = {b["channel"]: b["payload"] for b in received if b["eventType"] == "message.received"}
    assert payloads["whatsapp"]["from"] == "+1234567890"
    assert payloads["email"]["from"] == "customer@example.com"
    assert whatsapp["source"] == {"from": "+1234567890"}


def test_the_documents_sample_close_dialog_is_answered_200_and_kept_as_unmatched_with_the_ids_it_looked_for(
    site, integration, knowledge, chat2desk, workers, admin_client
):
    workers.start()
    settled(post(integration, {**SEED_MESSAGE, "text": HOURS}))  # the seed's message carries no dialog or request id
    conversation = Conversation.objects.get(integration=integration, external_id="12345678")

    unmatched = settled(post(integration, SEED_CLOSE))
    assert unmatched.status == "unmatched" and unmatched.conversation_id is None
    assert "request_id 12345 or dialog_id 67890" in unmatched.outcome
    conversation.refresh_from_db()
    assert conversation.is_open
    listed = admin_client.get("/admin/inbound/inboundevent/?status=unmatched").content.decode()
    assert unmatched.id in listed or "request_id 12345 or dialog_id 67890" in listed
    page = admin_client.get(f"/admin/inbound/integration/{integration.pk}/change/").content.decode()
    assert "unmatched" in page and "request_id 12345 or dialog_id 67890" in page

    # With the client's id, the same close finds the session.
    matched = settled(post(integration, {**SEED_CLOSE, "client_id": "12345678"}))
    assert (matched.status, matched.conversation_id) == ("processed", conversation.id)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.session) == ("closed", "closed")
