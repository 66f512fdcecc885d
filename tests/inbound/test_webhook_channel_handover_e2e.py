"""Seed 003 after a handover to a human: a person's reply (the API, sender `agent`) reaches the
webhook channel's caller, posted to POST_URL in async mode (with the separate end-of-task message
the document describes) or returned on the next request or poll in sync mode."""

import json

import pytest
from django.test import Client

from domain.models import Conversation
from inbound import integrations
from tests.conftest import client_for
from tests.inbound.test_chat2desk_e2e import FAST_SWEEP, wait_until
from tests.support.node import seed_verify
from tests.support.webhook_channel import token, v2_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HOURS = "What are your opening hours?"
UNKNOWN = "Can I pay with seashells?"
PERSON = "Hi, I'm Sam from support: yes, we take seashells."


def ask(instance, user: str, text: str):
    auth = {"Authorization": f"bearer {token(instance)}"}
    return Client().post(instance.webhook_path, v2_message(user, text), content_type="application/json", headers=auth)


def person_replies(site, conversation_id: str, body: str) -> None:
    response = client_for(site).post(
        f"/api/v1/conversations/{conversation_id}/messages", {"sender_type": "agent", "body": body}, format="json"
    )
    assert response.status_code == 201, response.json()


def test_async_mode_posts_the_end_of_each_turn_and_a_persons_reply_after_the_handover(site, knowledge, receiver, workers):
    created = client_for(site).post(
        "/api/v1/integrations",
        {"connector_type": "webhook", "name": "Async IVR", "mode": "async", "post_url": receiver.url},
        format="json",
    )
    assert created.status_code == 201, created.json()
    instance = integrations.Integration.objects.get(pk=created.json()["id"])
    secret = created.json()["post_url_secret"]
    workers.start(**FAST_SWEEP)

    assert ask(instance, "caller-1", HOURS).status_code == 202
    answered = receiver.wait_for(2)
    assert ask(instance, "caller-1", UNKNOWN).status_code == 202
    handed_over = receiver.wait_for(3)
    conversation = Conversation.objects.get(integration=instance, external_id="caller-1")
    assert conversation.session == "paused"
    person_replies(site, conversation.id, PERSON)

    posted = receiver.wait_for(4)
    assert seed_verify("agentbot", secret, posted) == [True] * 4  # seed 002's receiver, POST_URL secret
    bodies = [json.loads(r.body) for r in posted]
    addressing = {"from": {"id": site.id}, "to": {"id": "caller-1"}, "sessionId": conversation.id}
    messages = [b for b in bodies if "data" in b]
    assert [m["data"][0]["val"] for m in messages] == [knowledge.answer, PERSON]
    assert all({k: m[k] for k in addressing} == addressing and m["_v"] == "v2" for m in messages)
    ends = [b for b in bodies if b.get("endOfTask")]
    assert ends[0] == {
        **addressing,
        "endOfTask": True,
        "endReason": "Fulfilled",
        "completedTaskId": "answer",
        "completedTaskName": "Answer the visitor",
        "createdOn": ends[0]["createdOn"],
        "_v": "v2",
    }
    assert ends[0]["createdOn"].endswith("Z")
    assert (ends[1]["endReason"], set(ends[1]["handoff"])) == ("AgentTransfer", {"reason"})
    assert (ends[1]["completedTaskId"], ends[1]["completedTaskName"]) == ("handoff", "Hand the conversation to a person")
    assert len(ends) == 2, "a person's reply ends no turn of the agent"
    # The reply destination is ordered per conversation: the answer, then the end of its turn.
    assert [json.loads(r.body).get("endReason") for r in answered] == [None, "Fulfilled"]
    assert json.loads(handed_over[2].body)["endReason"] == "AgentTransfer"


def test_sync_mode_returns_a_persons_replies_with_the_callers_next_request_once(site, knowledge):
    instance = integrations.integration_create(site=site, connector_type="webhook", polling=False)

    handed = ask(instance, "caller-2", UNKNOWN).json()
    assert (handed["endReason"], handed["data"]) == ("AgentTransfer", [])
    conversation = Conversation.objects.get(integration=instance, external_id="caller-2")
    person_replies(site, conversation.id, PERSON)
    person_replies(site, conversation.id, "Anything else?")

    following = ask(instance, "caller-2", "Great, thanks!").json()
    assert [m["val"] for m in following["data"]] == [PERSON, "Anything else?"]
    assert following["sessionId"] == conversation.id
    assert ask(instance, "caller-2", "Bye").json()["data"] == [], "each reply is returned once"


def test_sync_polling_returns_a_persons_reply_on_the_next_poll(site, knowledge, workers, settings):
    settings.AGENTBOT_WEBHOOK_POLL_WAIT = 0.2
    instance = integrations.integration_create(site=site, connector_type="webhook")  # v2, sync, polling
    auth = {"Authorization": f"bearer {token(instance)}"}

    first = ask(instance, "caller-3", UNKNOWN).json()  # no worker runs yet: the answer is a pollId
    assert first["status"] == "InProgress"
    poll_url = f"/chatbot/hooks/{site.id}/poll/{first['pollId']}"
    workers.start(**FAST_SWEEP)
    done = wait_until(
        lambda: (a := Client().post(poll_url, headers=auth).json())["status"] == "Completed" and a, what="poll completed"
    )
    assert (done["endReason"], done["data"]) == ("AgentTransfer", [])
    conversation = Conversation.objects.get(integration=instance, external_id="caller-3")
    person_replies(site, conversation.id, PERSON)

    polled = Client().post(poll_url, headers=auth).json()
    assert (polled["status"], [m["val"] for m in polled["data"]]) == ("Completed", [PERSON])
