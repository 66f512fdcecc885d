"""The product documents' own Node receivers (tests/support/seed_receivers.js) on what a real
worker sends to a local receiver: secret rotation (seeds 002, 004, 001) and the leads record's
types (seed 004)."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from subscriptions.models import Webhook
from tests.deliveries.test_end_to_end import wait_for_status
from tests.deliveries.test_formats_e2e import by_delivery, post
from tests.support.node import node_verify, seed_verify

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LEADS_SUCCESS = (200, b'{"status":"success"}')  # also a 2xx for the other formats
# Which request of each format's webhook: the header that names its format.
FORMAT_HEADERS = {"agentbot": "x-agentbot-signature", "leads": "x-webhook-signature", "chatzuri": "x-chatzuri-signature"}


def of_format(requests, format_name: str) -> list:
    return [r for r in requests if FORMAT_HEADERS[format_name] in r.headers]


def rotate(api, webhook) -> tuple[str, str]:
    old = webhook.secret
    response = api.post(f"/api/v1/webhooks/{webhook.id}/rotate-secret", {"grace_seconds": 3600}, format="json")
    assert response.status_code == 200, response.json()
    return old, response.json()["secret"]


def publish_a_message_and_a_lead(api) -> None:
    conversation = post(api, "conversations", {"channel": "web", "visitor": {"email": "ada@example.com"}})
    post(api, f"conversations/{conversation['id']}/messages", {"sender_type": "visitor", "body": "Hi, what's your pricing?"})
    post(api, "leads", {"conversation_id": conversation["id"], "first_name": "David", "email": "test@qq.com"})


def test_during_grace_each_documents_receiver_still_on_the_old_secret_verifies_and_after_it_the_new_one(
    api, site, webhook_factory, receiver, workers
):
    receiver.responder = lambda n: LEADS_SUCCESS
    webhooks = {
        "agentbot": webhook_factory(site=site, url=receiver.url, events=["message.created"], format="agentbot"),
        "leads": webhook_factory(site=site, url=receiver.url, events=["lead.submit"], format="leads"),
        "chatzuri": webhook_factory(site=site, url=receiver.url, events=["lead.submit"], format="chatzuri"),
    }
    secrets = {name: rotate(api, webhook) for name, webhook in webhooks.items()}
    workers.start(concurrency=1)

    publish_a_message_and_a_lead(api)
    during = receiver.wait_for(3)
    for name, (old, new) in secrets.items():
        requests = of_format(during, name)
        assert len(requests) == 1, name
        # The document's snippet, not yet switched, keeps verifying through the grace period.
        assert seed_verify(name, old, requests) == [True], name
        if name != "chatzuri":  # one signature only: it is the old secret's until the grace ends
            assert requests[0].headers[FORMAT_HEADERS[name]].count("v1=") == 2
            # A receiver that checks every v1 verifies with either secret.
            assert all(r["ok"] for r in node_verify(name, new, requests) + node_verify(name, old, requests)), name

    # The grace period ends: from then on the new secret alone signs, and the receivers switch.
    Webhook.objects.filter(pk__in=[w.pk for w in webhooks.values()]).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    publish_a_message_and_a_lead(api)
    after = receiver.wait_for(6)[3:]
    for name, (old, new) in secrets.items():
        requests = of_format(after, name)
        assert seed_verify(name, new, requests) == [True], name
        assert seed_verify(name, old, requests) == [False], name


def test_leads_session_id_is_an_integer_for_a_lead_without_conversation_and_for_the_test_record(
    api, site, webhook_factory, receiver, workers
):
    receiver.responder = lambda n: LEADS_SUCCESS
    webhook = webhook_factory(site=site, url=receiver.url, events=["lead.submit"], format="leads")
    workers.start(concurrency=1)

    post(api, "leads", {"first_name": "David", "last_name": "Garcia", "email": "test@qq.com", "content": "test"})
    assert api.post(f"/api/v1/webhooks/{webhook.id}/test", format="json").status_code in (200, 201, 202)
    conversation = post(api, "conversations", {"channel": "web"})
    post(api, "leads", {"conversation_id": conversation["id"], "email": "test@qq.com"})

    requests = receiver.wait_for(3)
    assert seed_verify("leads", webhook.secret, requests) == [True, True, True]
    session_ids = sorted(json.loads(r.body)["SessionID"] for r in requests)
    assert session_ids == [0, 0, conversation["number"]]
    for delivery in by_delivery(webhook).values():
        wait_for_status(delivery.id, "succeeded")
