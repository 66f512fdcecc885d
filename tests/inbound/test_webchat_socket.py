"""The webchat connector with real parts: uvicorn serving agentbot/asgi.py on the test database, a
python-socketio client as the widget, a Celery worker and a local subscriber."""

import json
import time

import pytest
from websockets.sync.client import connect as ws_connect

from domain import services as domain
from domain.models import Conversation
from inbound import integrations
from inbound.models import InboundEvent
from tests.inbound.conftest import SHOP
from tests.inbound.test_chat2desk_e2e import HOURS, received_events, transcript, wait_until
from tests.support.webchat_client import Visitor

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UNKNOWN_QUESTION = "Can I pay with seashells?"


@pytest.fixture
def visitors():
    made = []

    def make() -> Visitor:
        made.append(Visitor())
        return made[-1]

    yield make
    for visitor in made:
        visitor.close()


def is_ai(data) -> bool:
    return data["sender_type"] == "ai"


def test_a_visitor_message_is_answered_on_the_same_connection_and_published(
    site, webchat, knowledge, receiver, webhook_factory, workers, start_server, visitors
):
    webhook_factory(site=site, url=receiver.url, events=["conversation.created", "message.created"])
    workers.start(beat=False)
    server = start_server()
    visitor = visitors()

    session = visitor.connect(server.url, webchat.id, origin=SHOP, page_url=f"{SHOP}/pricing")
    assert (session["resumed"], session["conversation_id"], session["messages"]) == (False, None, [])
    assert session["limits"] == {"max_message_chars": 2000, "messages_per_second": 1.0, "burst": 5}
    ack = visitor.send(HOURS)
    assert ack["ok"] is True and ack["id"].startswith("inb_")

    reply = visitor.wait_for("message", is_ai)
    assert reply["text"] == knowledge.answer
    conversation = Conversation.objects.get(integration=webchat)
    assert reply["conversation_id"] == conversation.id
    assert (conversation.channel, conversation.page_url, conversation.session) == ("web", f"{SHOP}/pricing", "active")
    assert transcript(conversation) == [("visitor", HOURS), ("ai", knowledge.answer)]
    assert [data["typing"] for data in visitor.of("typing")] == [True, False]
    event = InboundEvent.objects.get(pk=ack["id"])
    assert event.status == "processed" and "returned to the caller" in event.outcome

    receiver.wait_for(3)
    (created,) = received_events(receiver, "conversation.created")
    assert (created["conversation_id"], created["channel"]) == (conversation.id, "web")
    assert created["source"] == {"sessionId": conversation.external_id}
    assert created["page_url"] == f"{SHOP}/pricing"
    assert sorted((m["sender_type"], m["body"]) for m in received_events(receiver, "message.created")) == [
        ("ai", knowledge.answer),
        ("visitor", HOURS),
    ]
    # The session id is the visitor's key to the conversation: it never leaves in an event.
    assert all(session["session"] not in r.body.decode() for r in receiver.received)


def test_reconnecting_with_the_session_resumes_the_conversation_until_it_is_closed(
    site, webchat, knowledge, start_server, visitors
):
    server = start_server()
    first = visitors()
    token = first.connect(server.url, webchat.id, origin=SHOP)["session"]
    first.send(HOURS)
    first.wait_for("message", is_ai)
    first.close()

    again = visitors()
    resumed = again.connect(server.url, webchat.id, origin=SHOP, session=token)
    conversation = Conversation.objects.get(integration=webchat)
    assert (resumed["resumed"], resumed["session"], resumed["conversation_id"]) == (True, token, conversation.id)
    assert [(m["sender_type"], m["text"]) for m in resumed["messages"]] == [("visitor", HOURS), ("ai", knowledge.answer)]
    again.send("And are you open on Saturday? opening hours")
    wait_until(lambda: conversation.messages.count() == 4, what="the second exchange stored")
    assert Conversation.objects.filter(integration=webchat).count() == 1

    # A session id made for another integration, or made up, starts a new session.
    forged = visitors().connect(server.url, webchat.id, origin=SHOP, session=token[:-2] + "xx")
    assert forged["resumed"] is False and forged["session"] != token

    domain.conversation_close(conversation=conversation)
    after_close = visitors()
    fresh = after_close.connect(server.url, webchat.id, origin=SHOP, session=token)
    assert (fresh["conversation_id"], fresh["messages"]) == (None, [])
    after_close.send(HOURS)
    after_close.wait_for("message", is_ai)
    newest = Conversation.objects.filter(integration=webchat).order_by("-created_at").first()
    assert newest.pk != conversation.pk and newest.status == "open"
    time.sleep(1)  # a few polls of the new conversation: the answer is not sent twice
    assert [m["conversation_id"] for m in after_close.of("message")] == [newest.pk]


def test_an_unanswerable_question_is_handed_to_a_person_whose_reply_reaches_the_widget(
    site, webchat, knowledge, start_server, visitors
):
    server = start_server()
    visitor = visitors()
    visitor.connect(server.url, webchat.id, origin=SHOP)
    visitor.send(UNKNOWN_QUESTION)

    handoff = visitor.wait_for("handoff")
    assert "person" in handoff["message"]
    conversation = Conversation.objects.get(integration=webchat)
    assert conversation.session == "paused"
    assert visitor.of("message") == []

    domain.message_create(conversation=conversation, sender_type="agent", body="Seashells are fine, Ana.")
    reply = visitor.wait_for("message", lambda data: data["sender_type"] == "agent")
    assert reply["text"] == "Seashells are fine, Ana."
    time.sleep(1)
    assert visitor.of("message") == [reply]


def test_an_answer_the_model_could_not_give_yet_is_announced_and_the_event_kept_for_the_sweep(
    site, webchat, start_server, visitors, closed_port
):
    # A language model nobody listens to: the attempt fails and the event waits for its next one.
    server = start_server(AGENTBOT_LLM_BASE_URL=f"http://127.0.0.1:{closed_port}/v1", AGENTBOT_WEBCHAT_ANSWER_WAIT="0.2")
    visitor = visitors()
    visitor.connect(server.url, webchat.id, origin=SHOP)
    event_id = visitor.send(HOURS)["id"]

    assert visitor.wait_for("notice")["message"] == "The answer is taking longer than usual; it will appear here."
    event = InboundEvent.objects.get(pk=event_id)
    assert (event.status, event.attempts) == ("accepted", 1)
    assert "could not be reached" in event.outcome
    assert visitor.of("handoff") == [] and visitor.client.connected


def test_connections_are_refused_with_a_reason_for_pages_and_integrations_that_may_not_chat(
    site, webchat, integration, start_server, visitors
):
    server = start_server()

    def refused(integration_id, origin, **auth) -> tuple[str, str]:
        refusal = visitors().refused(server.url, integration_id, origin=origin, **auth)
        return refusal["data"]["error"], refusal["message"]

    code, message = refused(webchat.id, "https://evil.example")
    assert code == "origin_not_allowed"
    assert message == (
        f"pages on https://evil.example may not open this chat: add the origin to the allowed origins of integration {webchat.id}"
    )
    assert refused(webchat.id, None)[0] == "origin_required"
    assert refused("intg_nope", SHOP)[0] == "integration_not_found"
    assert refused(integration.id, SHOP)[0] == "integration_not_found"  # a Chat2Desk integration
    assert refused(webchat.id, SHOP, page_url="javascript:alert(1)")[0] == "invalid_page_url"
    assert refused(["not", "a", "string"], SHOP)[0] == "invalid_auth"

    # With no allowed origins, only the service's own pages (the demo page) may open the chat.
    integrations.integration_update(integration=webchat, allowed_origins="")
    assert refused(webchat.id, SHOP)[0] == "origin_not_allowed"
    assert visitors().connect(server.url, webchat.id, origin=server.url)["resumed"] is False

    integrations.integration_update(integration=webchat, active=False, allowed_origins=SHOP)
    assert refused(webchat.id, SHOP)[0] == "integration_inactive"
    # Nothing above hurt the server.
    assert "Traceback" not in server.log()


def test_message_size_and_rate_limits_answer_with_errors_and_keep_the_connection(
    site, webchat, knowledge, start_server, visitors
):
    server = start_server(AGENTBOT_WEBCHAT_MAX_MESSAGE_CHARS="40", AGENTBOT_WEBCHAT_RATE="1", AGENTBOT_WEBCHAT_BURST="2")
    visitor = visitors()
    assert visitor.connect(server.url, webchat.id, origin=SHOP)["limits"]["max_message_chars"] == 40

    too_long = visitor.send("x" * 41)
    assert too_long == {
        "ok": False,
        "error": "message_too_long",
        "message": "the message has 41 characters; shorten it to at most 40",
    }
    assert visitor.wait_for("error")["error"] == "message_too_long"
    assert visitor.send({"body": "hi"})["error"] == "invalid_message"
    assert visitor.send("   ")["error"] == "empty_message"

    acks = [visitor.send(HOURS) for _ in range(4)]
    assert [a["ok"] for a in acks] == [True, True, False, False]
    assert acks[2]["error"] == "rate_limited"
    assert acks[2]["message"] == "you are sending messages too fast: wait a moment, then send again (at most 1 a second)"
    wait_until(lambda: len(visitor.of("message")) == 2, what="both accepted messages answered")
    assert InboundEvent.objects.filter(integration=webchat).count() == 2

    # A frame far beyond any message closes that connection, and only that one.
    bystander = visitors()
    bystander.connect(server.url, webchat.id, origin=SHOP)
    flood = visitors()
    flood.connect(server.url, webchat.id, origin=SHOP)
    flood.client.emit("message", {"text": "y" * 500_000})
    assert flood.disconnected.wait(10)
    # Malformed packets are ignored (and logged in one line each).
    with ws_connect(server.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket", origin=SHOP) as raw:
        raw.recv()
        for junk in ("4garbage", "42[", "40{not json", "99", b"\x00binary", "42" + '["message",' * 1000):
            raw.send(junk)
    assert bystander.send(HOURS)["ok"] is True
    bystander.wait_for("message", is_ai)
    assert "Traceback" not in server.log()


def test_one_address_holds_a_bounded_number_of_chats_and_gets_its_places_back_as_they_close(
    site, webchat, start_server, visitors
):
    server = start_server(AGENTBOT_WEBCHAT_MAX_CONNECTIONS_PER_ADDRESS="2")
    # Refused connects hold no place.
    for _ in range(3):
        assert visitors().refused(server.url, webchat.id, origin="https://evil.example")["data"]["error"] == "origin_not_allowed"
    first, second = visitors(), visitors()
    first.connect(server.url, webchat.id, origin=SHOP)
    second.connect(server.url, webchat.id, origin=SHOP)
    refusal = visitors().refused(server.url, webchat.id, origin=SHOP)
    assert refusal["data"]["error"] == "too_many_connections"
    assert refusal["message"] == "too many chats are open from your address (at most 2); close one and try again"
    # A closed chat gives its place back.
    first.close()
    wait_until(lambda: _connects(server, webchat), what="a place freed by the closed chat")
    assert second.send(HOURS)["ok"] is True


def _connects(server, webchat) -> bool:
    visitor = Visitor()
    try:
        visitor.connect(server.url, webchat.id, origin=SHOP)
        return True
    except Exception:
        return False
    finally:
        visitor.close()


def test_the_widget_and_the_demo_page_are_served_by_the_asgi_app(site, webchat, start_server):
    import requests

    server = start_server()
    widget = requests.get(f"{server.url}/static/webchat/widget.js", timeout=10)
    assert widget.status_code == 200 and "javascript" in widget.headers["content-type"]
    assert "/socket.io/?EIO=4&transport=websocket" in widget.text
    demo = requests.get(f"{server.url}/webchat/demo", params={"integration": webchat.id}, timeout=10)
    assert demo.status_code == 200
    assert f'<script src="{server.url}/static/webchat/widget.js" data-integration="{webchat.id}"' in demo.text
    missing = requests.get(f"{server.url}/webchat/demo", params={"integration": "intg_nope"}, timeout=10)
    assert missing.status_code == 404 and "no active webchat integration intg_nope" in json.loads(missing.text)["message"]
    assert requests.get(f"{server.url}/admin/login/", timeout=10).status_code == 200
    assert requests.get(f"{server.url}/static/admin/css/base.css", timeout=10).status_code == 200
