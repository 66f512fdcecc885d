"""The webhook channel's POST_URL gets a conversation's messages in the order the agent made them
(its reply destination is ordered by conversation, docs/ordering.md): the answer, then the
end-of-task message that closes the turn, which carries `createdOn` like the others."""

import json
import time
from datetime import datetime

import pytest
from django.test import Client

from inbound import integrations
from tests.conftest import client_for
from tests.inbound.test_chat2desk_e2e import FAST_SWEEP
from tests.support.webhook_channel import token, v2_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HOURS = "What are your opening hours?"


def test_the_end_of_task_reaches_post_url_only_after_the_answer_it_closes_was_taken(site, knowledge, receiver, workers):
    created = client_for(site).post(
        "/api/v1/integrations",
        {"connector_type": "webhook", "name": "Async IVR", "mode": "async", "post_url": receiver.url},
        format="json",
    )
    assert created.status_code == 201, created.json()
    instance = integrations.Integration.objects.get(pk=created.json()["id"])
    assert instance.reply_webhook.ordering == "key"
    answered_at: dict[int, float] = {}

    def slow_first_answer(number: int) -> tuple[int, bytes]:
        if number == 1:
            time.sleep(0.8)  # the answer is taken slowly: an unordered end-of-task would overtake it
        answered_at[number] = time.time()
        return 200, b'{"ok":true}'

    receiver.responder = slow_first_answer
    workers.start(**FAST_SWEEP)
    auth = {"Authorization": f"bearer {token(instance)}"}
    response = Client().post(instance.webhook_path, v2_message("caller-9", HOURS), content_type="application/json", headers=auth)
    assert response.status_code == 202

    answer, end = receiver.wait_for(2)
    answer_body, end_body = json.loads(answer.body), json.loads(end.body)
    assert answer_body["data"][0]["val"] == knowledge.answer
    assert (end_body["endOfTask"], end_body["endReason"]) == (True, "Fulfilled")
    assert end.at >= answered_at[1], "the end of the turn was sent before its answer was taken"
    answer_made = datetime.fromisoformat(answer_body["data"][0]["createdOn"].replace("Z", "+00:00"))
    end_made = datetime.fromisoformat(end_body["createdOn"].replace("Z", "+00:00"))
    assert end_made >= answer_made
