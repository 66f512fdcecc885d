"""Chat2Desk round trips with real parts: the web endpoint, PostgreSQL, Redis, a Celery worker
with beat, a local fake Chat2Desk API, a local fake language model and a local subscriber."""

import json
import time

import pytest
from django.test import Client

from agentbot.celery import app as celery_app
from deliveries.models import Delivery
from domain.models import Conversation
from inbound.models import InboundEvent, KnowledgeEntry
from inbound.services import PENDING
from tests.inbound.conftest import post_webhook
from tests.support.fake_chat2desk import FakeCompletions

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The inbound sweep runs every 30 s by default; these tests cannot wait that long for it.
FAST_SWEEP = {"AGENTBOT_INBOUND_SWEEP_INTERVAL": "1"}
HOURS = "What are your opening hours?"


def wait_until(check, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout:g} s")


def message(client_id: str, text: str, **more) -> dict:
    return {"text": text, "client_id": client_id, "channel_id": "987654", "transport": "whatsapp", **more}


def post(integration, payload: dict) -> InboundEvent:
    """POST the signed webhook; the inbound event it stored (or the one stored before it)."""
    response = post_webhook(Client(), integration, payload)
    assert (response.status_code, response.json()) == (200, {"ok": True})
    return InboundEvent.objects.filter(integration=integration).order_by("-received_at").first()


def settled(event: InboundEvent, timeout: float = 30.0) -> InboundEvent:
    """The event once a worker has finished with it (processed, ignored or failed)."""

    def done():
        current = InboundEvent.objects.get(pk=event.pk)
        return current if current.status not in PENDING else None

    return wait_until(done, timeout, f"inbound event {event.id} settled")


def sent_to_chat2desk(chat2desk, count: int, timeout: float = 30.0) -> list[dict]:
    """The messages Chat2Desk accepted, once there are `count`."""
    wait_until(lambda: len(chat2desk.messages) >= count, timeout, f"{count} message(s) sent to Chat2Desk")
    return list(chat2desk.messages)


def reply_delivery(integration, succeeded: bool = True) -> Delivery:
    """The (single) delivery of a reply through the integration's connector webhook."""
    delivery = Delivery.objects.get(webhook=integration.reply_webhook)
    if succeeded:
        wait_until(lambda: Delivery.objects.get(pk=delivery.pk).status == "succeeded", what="reply delivery succeeded")
    return Delivery.objects.get(pk=delivery.pk)


def received_events(receiver, event_type: str) -> list[dict]:
    """The `data` of each event of `event_type` the subscriber got."""
    return [json.loads(r.body)["data"] for r in receiver.received if r.headers["x-agentbot-event"] == event_type]


def transcript(conversation: Conversation) -> list[tuple[str, str]]:
    return [(m.sender_type, m.body) for m in conversation.messages.order_by("created_at")]


# --- message round trips -------------------------------------------------------------------------
def test_a_client_message_is_stored_published_and_answered_from_the_knowledge_base(
    site, integration, knowledge, chat2desk, receiver, webhook_factory, workers
):
    subscriber = webhook_factory(site=site, url=receiver.url, events=["message.created"])
    workers.start()
    payload = message("12345678", HOURS)

    event = settled(post(integration, payload))

    (sent,) = sent_to_chat2desk(chat2desk, 1)
    assert sent == {
        "client_id": "12345678",
        "text": knowledge.answer,
        "type": "to_client",
        "transport": "whatsapp",
        "channel_id": "987654",
    }
    conversation = Conversation.objects.get(integration=integration)
    assert (conversation.channel, conversation.external_id, conversation.session) == ("whatsapp", "12345678", "active")
    assert transcript(conversation) == [("visitor", HOURS), ("ai", knowledge.answer)]
    receiver.wait_for(2)
    # Two deliveries on their own: either may arrive first.
    assert sorted((m["sender_type"], m["body"]) for m in received_events(receiver, "message.created")) == [
        ("ai", knowledge.answer),
        ("visitor", HOURS),
    ]
    assert event.status == "processed" and "sent as evt_" in event.outcome
    reply = reply_delivery(integration)
    assert chat2desk.calls[-1].headers["authorization"] == chat2desk.token
    assert reply.attempt_count == 1
    assert subscriber.deliveries.count() == 2
    # The attempt log shows that the token was sent, never the token itself.
    (attempt,) = reply.attempts.all()
    assert attempt.request_headers["Authorization"] == "[redacted]"
    assert chat2desk.token not in json.dumps(attempt.request_headers)


def test_a_question_the_knowledge_base_cannot_answer_goes_to_a_human_and_the_agent_stays_silent(
    site, integration, knowledge, chat2desk, receiver, webhook_factory, workers
):
    webhook_factory(site=site, url=receiver.url, events=["message.created", "conversation.needs_human"])
    workers.start()

    first = settled(post(integration, message("555", "Can I pay with bitcoin?")))

    receiver.wait_for(2)
    conversation = Conversation.objects.get(integration=integration)
    (needs_human,) = received_events(receiver, "conversation.needs_human")
    assert needs_human["conversation_id"] == conversation.id
    assert needs_human["reason"] == "The knowledge base has no answer to the visitor's question."
    assert (conversation.status, conversation.session) == ("open", "paused")
    assert conversation.needs_human_at is not None
    assert first.outcome.startswith("handed to a human")

    # The client writes again while a human has the dialog: stored and published, never answered,
    # even though the knowledge base could answer this one.
    second = settled(post(integration, message("555", HOURS)))

    receiver.wait_for(3)
    assert [m["body"] for m in received_events(receiver, "message.created")] == ["Can I pay with bitcoin?", HOURS]
    assert second.status == "processed" and second.outcome.startswith("stored; the session is paused")
    assert second.conversation_id == conversation.id
    conversation.refresh_from_db()
    assert conversation.session == "paused"
    assert transcript(conversation) == [("visitor", "Can I pay with bitcoin?"), ("visitor", HOURS)]
    # A reply would have been published with the event's processing; none was, and none reached Chat2Desk.
    assert not Delivery.objects.filter(webhook=integration.reply_webhook).exists()
    assert not [c for c in chat2desk.calls if c.path == "/v1/messages"]


def test_the_same_chat2desk_message_posted_twice_is_stored_and_answered_once(site, integration, knowledge, chat2desk, workers):
    workers.start()
    payload = message("777", HOURS, message_id=424242)

    event = post(integration, payload)
    again = post(integration, payload)
    assert again.pk == event.pk
    settled(event)
    sent_to_chat2desk(chat2desk, 1)
    # Redelivered once more after it was answered: still the same stored event.
    assert post(integration, payload).pk == event.pk
    # A later message of the same client is answered: by then a copy of the first would have been too.
    settled(post(integration, message("777", "Are you open on Saturday?", message_id=424243)))

    sent = sent_to_chat2desk(chat2desk, 2)
    assert [m["text"] for m in sent] == [knowledge.answer, knowledge.answer]
    assert InboundEvent.objects.filter(integration=integration).count() == 2
    conversation = Conversation.objects.get(integration=integration)
    assert transcript(conversation) == [
        ("visitor", HOURS),
        ("ai", knowledge.answer),
        ("visitor", "Are you open on Saturday?"),
        ("ai", knowledge.answer),
    ]


def test_a_client_who_writes_yes_twice_without_message_ids_is_answered_twice(site, integration, chat2desk, workers):
    KnowledgeEntry.objects.create(site=site, question="Shall we confirm?", answer="Confirmed, thank you.", keywords="yes")
    workers.start()
    yes = message("888", "yes")

    first = settled(post(integration, yes))
    second = settled(post(integration, yes))

    assert first.pk != second.pk and (first.status, second.status) == ("processed", "processed")
    sent = sent_to_chat2desk(chat2desk, 2)
    assert [(m["client_id"], m["text"]) for m in sent] == [("888", "Confirmed, thank you.")] * 2
    conversation = Conversation.objects.get(integration=integration)
    assert transcript(conversation) == [("visitor", "yes"), ("ai", "Confirmed, thank you.")] * 2


# --- status events (seed 000's hook_type table) ---------------------------------------------------
def status(hook_type: str, request_id: int, **more) -> dict:
    return {"hook_type": hook_type, "request_id": request_id, **more}


def test_the_documents_close_dialog_sent_again_after_a_message_with_its_ids_closes_the_session(
    site, integration, knowledge, chat2desk, workers
):
    workers.start()
    close = status("close_dialog", 12345, dialog_id=67890)  # seed 000's literal sample
    early = settled(post(integration, close))
    assert early.status == "unmatched", "no session carried these ids yet"
    settled(post(integration, message("999", HOURS, request_id=12345, dialog_id=67890)))
    sent_to_chat2desk(chat2desk, 1)

    again = settled(post(integration, close))

    assert again.pk != early.pk, "the same status body sent again is a new event"
    assert (again.status, again.conversation_id) == ("processed", Conversation.objects.get(integration=integration).id)
    conversation = Conversation.objects.get(integration=integration)
    assert (conversation.status, conversation.session) == ("closed", "closed")


def test_status_events_close_pause_or_are_ignored_and_a_closed_client_starts_a_new_conversation(
    site, integration, knowledge, chat2desk, receiver, webhook_factory, workers
):
    webhook_factory(site=site, url=receiver.url, events=["conversation.closed"])
    workers.start()
    # Three clients, each in a Chat2Desk dialog and request that their first message tells us.
    for client_id, dialog_id, request_id in (("A", 501, 9001), ("B", 502, 9002), ("C", 503, 9003)):
        settled(post(integration, message(client_id, HOURS, dialog_id=dialog_id, request_id=request_id)))
    sent_to_chat2desk(chat2desk, 3)
    a, b, c = (Conversation.objects.get(integration=integration, external_id=x) for x in "ABC")

    # A's dialog is closed under a request we never saw: the dialog id finds the session.
    by_dialog = settled(post(integration, status("close_dialog", 7777, dialog_id=501)))
    # B's request is closed without a dialog id: the request id finds it.
    by_request = settled(post(integration, status("close_request", 9002)))
    transferred = settled(post(integration, status("dialog_transferred", 9003, dialog_id=503)))
    unknown = settled(post(integration, status("close_dialog", 123456, dialog_id=654321)))
    closed_again = settled(post(integration, status("close_request", 9002)))

    assert (by_dialog.status, by_dialog.conversation_id) == ("processed", a.id)
    assert (by_request.status, by_request.conversation_id) == ("processed", b.id)
    assert (transferred.status, transferred.conversation_id) == ("processed", c.id)
    assert (unknown.status, unknown.conversation_id) == ("unmatched", None)
    assert unknown.outcome.startswith("unmatched: no open session of this integration has request_id 123456 or dialog_id 654321;")
    assert closed_again.status == "unmatched", "a closed session is not closed twice"
    for conversation in (a, b, c):
        conversation.refresh_from_db()
    assert (a.status, a.session) == ("closed", "closed") and a.closed_at is not None
    assert (b.status, b.session) == ("closed", "closed") and b.closed_at is not None
    assert (c.status, c.session) == ("open", "paused")
    (transfer,) = c.context["transfers"]
    assert transfer == {
        "at": transfer["at"],
        "source": "chat2desk",
        "hook_type": "dialog_transferred",
        "request_id": 9003,
        "dialog_id": 503,
    }
    assert c.context["chat2desk"]["dialog_id"] == 503, "the addressing stays next to the transfers"
    receiver.wait_for(2)
    assert sorted(e["conversation_id"] for e in received_events(receiver, "conversation.closed")) == sorted([a.id, b.id])
    assert Delivery.objects.filter(event__type="conversation.closed").count() == 2

    # A writes again: a new conversation (a new, active session) that the agent answers.
    settled(post(integration, message("A", "When are you open?", dialog_id=501, request_id=9010)))

    sent = sent_to_chat2desk(chat2desk, 4)
    assert (sent[-1]["client_id"], sent[-1]["text"]) == ("A", knowledge.answer)
    fresh = Conversation.objects.get(integration=integration, external_id="A", status="open")
    assert fresh.id != a.id and fresh.session == "active"
    assert transcript(fresh) == [("visitor", "When are you open?"), ("ai", knowledge.answer)]
    assert transcript(Conversation.objects.get(pk=a.id)) == [("visitor", HOURS), ("ai", knowledge.answer)]


# --- reliability ---------------------------------------------------------------------------------
def test_a_reply_chat2desk_refuses_is_retried_logged_and_arrives_once(site, integration, knowledge, chat2desk, workers):
    chat2desk.fail_messages = 2
    workers.start(AGENTBOT_RETRY_SCHEDULE="0,1,1")

    event = settled(post(integration, message("888", HOURS)))

    reply = reply_delivery(integration)
    assert event.status == "processed" and reply.event_id in event.outcome
    assert reply.attempt_count == 3
    attempts = list(reply.attempts.order_by("number"))
    assert [(a.number, a.status_code, a.succeeded) for a in attempts] == [(1, 500, False), (2, 500, False), (3, 200, True)]
    assert "temporarily unavailable" in attempts[0].response_body
    assert [c.path for c in chat2desk.calls] == ["/v1/messages"] * 3
    assert chat2desk.messages == [
        {"client_id": "888", "text": knowledge.answer, "type": "to_client", "transport": "whatsapp", "channel_id": "987654"}
    ]


def test_an_inbound_event_whose_queue_message_is_lost_is_processed_by_the_sweep(site, integration, knowledge, chat2desk, workers):
    # No worker runs yet: the task queued when the webhook was stored waits in Redis, and is lost.
    event = post(integration, message("999", HOURS))
    assert celery_app.control.purge() >= 1, "storing the webhook should have queued its processing"
    stored = InboundEvent.objects.get(pk=event.pk)
    assert (stored.status, stored.attempts) == ("received", 0)

    workers.start(**FAST_SWEEP)

    event = settled(event)
    (sent,) = sent_to_chat2desk(chat2desk, 1)
    assert (sent["client_id"], sent["text"]) == ("999", knowledge.answer)
    assert (event.status, event.attempts) == ("processed", 1)


# --- the language model --------------------------------------------------------------------------
MODEL_ANSWER = "We open at 9:00 on weekdays. (model)"


def model_reply(messages: list[dict]) -> str:
    return "HANDOFF" if "person" in messages[-1]["content"] else MODEL_ANSWER


@pytest.fixture
def model():
    fake = FakeCompletions(reply=model_reply)
    yield fake
    fake.close()


def test_the_language_model_answers_from_the_knowledge_base_hands_over_and_survives_its_own_failures(
    site, integration, knowledge, chat2desk, model, workers
):
    workers.start(
        AGENTBOT_LLM_BASE_URL=f"{model.url}/v1",
        AGENTBOT_LLM_MODEL="fake-model",
        AGENTBOT_LLM_TIMEOUT="0.5",  # the lease is at least 1.5 model timeouts
        AGENTBOT_INBOUND_LEASE="1",
        AGENTBOT_INBOUND_ATTEMPTS="2",
        **FAST_SWEEP,
    )

    # 1. An answer: the model's words reach the client on Chat2Desk.
    answered = settled(post(integration, message("L1", "When do you open?")))
    (sent,) = sent_to_chat2desk(chat2desk, 1)
    assert (sent["client_id"], sent["text"]) == ("L1", MODEL_ANSWER)
    assert answered.status == "processed" and "sent as" in answered.outcome
    # With a 1 s lease a slow first attempt may be handed out twice; each asks the same.
    system, *rest = model.calls[0].body["messages"]
    assert system["role"] == "system"
    assert knowledge.question in system["content"] and knowledge.answer in system["content"]
    assert rest == [{"role": "user", "content": "When do you open?"}]
    conversation = Conversation.objects.get(external_id="L1")
    assert transcript(conversation) == [("visitor", "When do you open?"), ("ai", MODEL_ANSWER)]

    # 2. The model says HANDOFF: a human takes over, nothing is sent.
    handed = settled(post(integration, message("L2", "I want to talk to a person")))
    conversation = Conversation.objects.get(external_id="L2")
    assert (conversation.session, handed.status) == ("paused", "processed")
    assert conversation.handoff_reason == "The language model could not answer from the knowledge base."
    assert transcript(conversation) == [("visitor", "I want to talk to a person")]

    # 3. The model fails: the event waits for its lease, is tried again, then goes to a human.
    model.status = 500
    failing = post(integration, message("L3", "Do you deliver?"))

    def first_attempt_failed():
        current = InboundEvent.objects.get(pk=failing.pk)
        assert current.status in PENDING, f"settled without waiting for a second attempt: {current.outcome}"
        return current if current.outcome.startswith("attempt 1:") else None

    waiting = wait_until(first_attempt_failed, what="first attempt recorded")
    assert (waiting.status, waiting.attempts) == ("accepted", 1)
    assert "the language model answered 500" in waiting.outcome
    failed = settled(failing)
    assert (failed.status, failed.attempts) == ("processed", 2)
    assert failed.outcome.startswith("handed to a human: The agent could not answer: the language model answered 500")
    asked = [c.body["messages"][-1]["content"] for c in model.calls]
    assert asked.count("Do you deliver?") == 2, "one call per attempt, AGENTBOT_INBOUND_ATTEMPTS of them"
    assert {c.body["model"] for c in model.calls} == {"fake-model"}
    conversation = Conversation.objects.get(external_id="L3")
    assert conversation.session == "paused" and "answered 500" in conversation.handoff_reason
    assert transcript(conversation) == [("visitor", "Do you deliver?")]
    assert len(chat2desk.messages) == 1
