"""A batch published through the API reaches the receivers through a real worker: every created
event once to each webhook, the refused and repeated ones never."""

import json
import time
from collections import Counter

import pytest

from deliveries.models import Delivery
from tests.conftest import client_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_every_event_a_batch_created_is_delivered_once_to_each_webhook(site, webhook_factory, receiver, workers):
    webhook_factory(site=site, url=receiver.url + "/a", events=["*"])
    webhook_factory(site=site, url=receiver.url + "/b", events=["ticket.created"])
    workers.start()
    api = client_for(site)
    events = [{"event": "ticket.created", "data": {"ticket_id": f"T-{n}"}, "idempotency_key": f"k{n}"} for n in range(120)]
    events[7] = {"event": "ticket.deleted", "data": {}}  # refused
    events[9] = dict(events[8])  # the same key again: the event of item 8
    response = api.post("/api/v1/events/batch", {"events": events}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["existing"], body["refused"]) == (118, 1, 1)
    created = {r["id"] for r in body["results"] if r["result"] == "created"}

    expected = len(created) * 2
    received = receiver.wait_for(expected, timeout=60)
    time.sleep(1.5)  # a second copy would have arrived by now (the sweep runs every 0.5 s)
    received = list(receiver.received)
    assert len(received) == expected
    by_delivery = Counter(r.headers["x-agentbot-delivery-id"] for r in received)
    assert set(by_delivery.values()) == {1}
    sent = Counter((r.path, json.loads(r.body)["data"]["ticket_id"]) for r in received)
    assert set(sent.values()) == {1}
    assert {ticket for _, ticket in sent} == {e["data"]["ticket_id"] for i, e in enumerate(events) if i not in (7, 9)}
    deadline = time.monotonic() + 30
    while Delivery.objects.exclude(status="succeeded").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(Delivery.objects.values_list("event_id", flat=True)) == created
    assert Delivery.objects.filter(status="succeeded", attempt_count=1).count() == expected
