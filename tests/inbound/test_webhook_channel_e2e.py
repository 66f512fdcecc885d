"""The webhook channel (seed 003) with real parts: v2 polling while a worker asks a slow model, and
async mode posting each answer to a local POST_URL as a signed, retried delivery of the engine."""

import hashlib
import hmac
import json
import time

import pytest
from django.test import Client

from deliveries.models import Delivery
from inbound import integrations, services
from inbound.models import InboundEvent
from tests.conftest import client_for
from tests.inbound.test_chat2desk_e2e import FAST_SWEEP, wait_until
from tests.support.fake_chat2desk import FakeCompletions
from tests.support.webhook_channel import token, v2_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HOURS = "What are your opening hours?"


def slow_reply(messages: list[dict]) -> str:
    time.sleep(1.5)
    return "We open at nine."


@pytest.fixture
def slow_model():
    fake = FakeCompletions(reply=slow_reply)
    yield fake
    fake.close()


def test_v2_polling_answers_with_a_poll_id_until_the_agent_is_done(site, slow_model, workers, settings):
    settings.AGENTBOT_WEBHOOK_POLL_WAIT = 0.3
    instance = integrations.integration_create(site=site, connector_type="webhook")  # v2, sync, polling on
    workers.start(AGENTBOT_LLM_BASE_URL=f"{slow_model.url}/v1", AGENTBOT_LLM_MODEL="fake-model", **FAST_SWEEP)
    auth = {"Authorization": f"bearer {token(instance)}"}

    first = Client().post(instance.webhook_path, v2_message("caller-1", HOURS), content_type="application/json", headers=auth)

    assert first.status_code == 200, first.content
    body = first.json()
    assert (body["status"], body["data"], body["endOfTask"]) == ("InProgress", [], False)
    poll_url = f"/chatbot/hooks/{site.id}/poll/{body['pollId']}"

    def completed():
        answer = Client().post(poll_url, headers=auth).json()
        return answer if answer["status"] == "Completed" else None

    done = wait_until(completed, timeout=30, what="poll completed")
    assert [m["val"] for m in done["data"]] == ["We open at nine."]
    assert (done["pollId"], done["endOfTask"], done["endReason"]) == (body["pollId"], True, "Fulfilled")
    # The poll belongs to its user: a token pinned to someone else is refused.
    other = {"Authorization": f"bearer {token(instance, userIdentity='caller-2')}"}
    assert Client().post(poll_url, headers=other).status_code == 401
    assert Client().post(f"/chatbot/hooks/{site.id}/poll/inb_nope", headers=auth).status_code == 404


def signature_valid(secret: str, header: str, body: bytes) -> bool:
    """What a POST_URL receiver does: HMAC-SHA256(secret, "<t>.<body>") against each v1."""
    parts = [p.split("=", 1) for p in header.split(",")]
    timestamp = next(v for k, v in parts if k == "t")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for k, v in parts if k == "v1")


def test_async_mode_acknowledges_at_once_and_posts_the_answer_to_post_url_with_retries(site, knowledge, receiver, workers):
    def answers(received) -> list:
        """The answer's attempts, without the separate end-of-task message that follows it."""
        return [r for r in received if b'"endOfTask"' not in r.body]

    def answer_fails_twice(number: int) -> tuple[int, bytes]:
        """The answer's first two attempts fail; the end-of-task message is answered 200 at once."""
        so_far = receiver.received[:number]
        return (500, b"{}") if so_far[-1] in answers(so_far)[:2] else (200, b"{}")

    receiver.responder = answer_fails_twice
    api = client_for(site)
    created = api.post(
        "/api/v1/integrations",
        {"connector_type": "webhook", "name": "Async IVR", "mode": "async", "post_url": receiver.url},
        format="json",
    )
    assert created.status_code == 201, created.json()
    instance = services.Integration.objects.get(pk=created.json()["id"])
    secret = created.json()["post_url_secret"]
    assert secret == instance.reply_webhook.secret and created.json()["client_secret"] == instance.client_secret
    workers.start(AGENTBOT_RETRY_SCHEDULE="0,1,1", **FAST_SWEEP)
    auth = {"Authorization": f"bearer {token(instance)}"}

    ack = Client().post(instance.webhook_path, v2_message("caller-1", HOURS), content_type="application/json", headers=auth)

    assert ack.status_code == 202, ack.content
    event = InboundEvent.objects.get(pk=ack.json()["requestId"])
    assert ack.json() == {"status": "Accepted", "requestId": event.id}
    arrivals = wait_until(
        lambda: answers(receiver.received)[:3] if len(answers(receiver.received)) >= 3 else None, what="3 attempts"
    )
    assert len({a.headers["x-agentbot-delivery-id"] for a in arrivals}) == 1  # one delivery, three attempts
    last = arrivals[-1]
    assert signature_valid(secret, last.headers["x-agentbot-signature"], last.body)
    body = json.loads(last.body)
    conversation_id = InboundEvent.objects.get(pk=event.id).conversation_id
    assert body == {
        "data": [
            {
                "type": "text",
                "val": knowledge.answer,
                "createdOn": body["data"][0]["createdOn"],
                "messageId": body["data"][0]["messageId"],
            }
        ],
        "from": {"id": site.id},
        "to": {"id": "caller-1"},
        "sessionId": conversation_id,
        "_v": "v2",
    }
    delivery = wait_until(
        lambda: Delivery.objects.filter(
            webhook=instance.reply_webhook, status="succeeded", event__idempotency_key__startswith="reply:"
        ).first(),
        what="delivery succeeded",
    )
    # In the delivery log like any other delivery, with each attempt.
    logged = api.get(f"/api/v1/deliveries/{delivery.id}").json()
    assert logged["status"] == "succeeded"
    # (Delivery is at least once: on a loaded machine a lease can run out and the answer go twice.)
    assert [a["status_code"] for a in logged["attempts"]][:3] == [500, 500, 200]
