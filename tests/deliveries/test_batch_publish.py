"""POST /api/v1/events/batch: one result per event in order, a refused event stops none of the
others, the new events and their deliveries stored in a few statements whatever the batch's size."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deliveries.bulk import postgresql
from deliveries.models import Delivery, Event

pytestmark = pytest.mark.django_db

DATA = {"conversation_id": "conv_1", "message_id": "msg_1", "sender_type": "visitor", "body": "Hi"}


def batch(api, events):
    return api.post("/api/v1/events/batch", {"events": events}, format="json")


def test_a_batch_mixing_valid_duplicate_and_invalid_events_answers_each_in_order(api, site, webhook_factory):
    first, second = webhook_factory(site=site, events=["*"]), webhook_factory(site=site, events=["ticket.created"])
    already = api.post("/api/v1/events", {"event": "message.created", "data": DATA, "idempotency_key": "k-old"}, format="json")
    assert already.status_code == 201
    events = [
        {"event": "message.created", "data": DATA},
        {"event": "message.deleted", "data": DATA},  # not in the catalogue
        {"event": "ticket.created", "data": {"ticket_id": "T-1"}, "idempotency_key": "k-new"},
        {"event": "message.created", "data": DATA, "idempotency_key": "k-old"},  # published before
        {"event": "ticket.created", "data": {"ticket_id": "T-1"}, "idempotency_key": "k-new"},  # earlier in this batch
        {"event": "message.created", "data": [1]},  # the serializer's own check
        {"event": "message.created", "data": DATA, "colour": "red"},  # an unknown field
        "not an object",
        {"event": "message.created", "data": {"n": 9007199254740993}},  # not JavaScript-safe
        {"event": "message.created", "data": {"body": "x" * (300 * 1024)}},  # over the event's limit
    ]
    response = batch(api, events)
    assert response.status_code == 200, response.json()
    body = response.json()
    results = body["results"]
    assert [r["result"] for r in results] == [
        "created", "refused", "created", "existing", "existing", "refused", "refused", "refused", "refused", "refused"
    ]  # fmt: skip
    assert (body["created"], body["existing"], body["refused"]) == (2, 2, 6)
    assert [r["status"] for r in results] == [201, 400, 201, 200, 200, 400, 400, 400, 400, 413]
    assert results[3]["id"] == already.json()["id"]
    assert results[4]["id"] == results[2]["id"]
    assert (results[0]["deliveries"], results[2]["deliveries"]) == (1, 2)

    # Each refusal is what a publish of that event alone is told.
    for index in (1, 5, 6, 7, 8, 9):
        alone = api.post("/api/v1/events", events[index], format="json")
        assert alone.status_code == results[index]["status"]
        expected = {"status": alone.status_code, "result": "refused", **alone.json()}
        assert results[index] == expected

    stored = Event.objects.filter(site=site)
    assert stored.count() == 3  # the old one and the two created
    created = Event.objects.get(pk=results[2]["id"])
    assert (created.type, created.data, created.idempotency_key) == ("ticket.created", {"ticket_id": "T-1"}, "k-new")
    assert set(created.deliveries.values_list("webhook_id", flat=True)) == {first.id, second.id}
    assert set(Delivery.objects.get(event_id=results[0]["id"]).webhook_id for _ in [0]) == {first.id}
    shown = api.get(f"/api/v1/events/{results[0]['id']}").json()
    assert shown["data"] == DATA and len(shown["deliveries"]) == 1


def test_a_large_batch_is_stored_in_a_fixed_number_of_statements(api, site, webhook_factory, monkeypatch):
    engine_statements = []
    execute = postgresql._execute
    monkeypatch.setattr(postgresql, "_execute", lambda sql, params: engine_statements.append(sql) or execute(sql, params))
    for _ in range(3):
        webhook_factory(site=site, events=["*"])
    webhook_factory(site=site, events=["*"], enabled=False)  # paused: its deliveries are stored and wait

    def statements(count: int) -> int:
        events = [
            {"event": "message.created", "data": {**DATA, "n": n}, "idempotency_key": f"k{count}-{n}"} for n in range(count)
        ]
        engine_statements.clear()
        with CaptureQueriesContext(connection) as queries:
            response = batch(api, events)
        assert response.json()["created"] == count
        # (The test's own transaction makes the view's a savepoint.)
        orm = [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
        return len(orm) + len(engine_statements)

    statements(1)  # the API key is cached from here on
    # the keys already used, the events, the webhooks, the deliveries handed out and those held
    assert statements(5) == statements(200) == 5
    assert Delivery.objects.count() == 206 * 4
    assert Delivery.objects.filter(lease_token__isnull=True).count() == 206  # the paused webhook's


def test_a_batch_over_the_count_limit_is_a_400_and_stores_nothing(api, site, webhook_factory):
    webhook_factory(site=site)
    response = batch(api, [{"event": "message.created", "data": DATA}] * 501)
    assert response.status_code == 400
    assert "at most 500 events" in response.json()["message"]
    assert not Event.objects.exists()
    assert batch(api, [{"event": "message.created", "data": DATA}] * 500).json()["created"] == 500


@pytest.mark.parametrize(
    "body, phrase",
    [
        ({"events": []}, "at least one event"),
        ({}, "events: This field is required"),
        ({"events": {"event": "message.created"}}, "events"),
        ({"events": [], "extra": 1}, "extra: unknown field"),
        ([{"event": "message.created", "data": DATA}], "Expected a dictionary"),
    ],
)
def test_a_body_that_is_not_a_batch_is_a_400_naming_what_is_wrong(api, body, phrase):
    response = api.post("/api/v1/events/batch", body, format="json")
    assert response.status_code == 400, response.content
    assert phrase in response.json()["message"]
    assert not Event.objects.exists()


def test_a_batch_body_over_one_megabyte_is_413_and_stores_nothing(api, site):
    item = '{"event":"message.created","data":{"b":"' + "x" * 2000 + '"}}'
    response = api.post(
        "/api/v1/events/batch", data='{"events":[' + ",".join([item] * 600) + "]}", content_type="application/json"
    )
    assert response.status_code == 413
    assert not Event.objects.exists()


def test_the_batch_needs_an_api_key(api_client):
    response = api_client.post("/api/v1/events/batch", {"events": [{"event": "message.created", "data": DATA}]}, format="json")
    assert response.status_code in (401, 403)
    assert not Event.objects.exists()


def test_the_batch_is_in_the_schema_with_an_example(api_client):
    schema = api_client.get("/api/v1/schema", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/events/batch"]["post"]
    content = operation["requestBody"]["content"]["application/json"]
    assert len(content["example"]["events"]) == 3
    assert content["schema"] == {"$ref": "#/components/schemas/EventBatchInputRequest"}
    shown = operation["responses"]["200"]["content"]["application/json"]
    assert [r["result"] for r in shown["example"]["results"]] == ["created", "existing", "refused"]


def test_a_batch_keeps_each_ordering_key_in_its_order_for_an_ordered_webhook(api, site, webhook_factory):
    """Events of one key in one batch: an ordered webhook gets the first as its key's head and the
    others waiting behind it, in the batch's order; an unordered webhook gets them all at once."""
    ordered = webhook_factory(site=site, events=["*"], ordering="key")
    unordered = webhook_factory(site=site, events=["*"])
    events = [{"event": "message.created", "data": {**DATA, "n": n}, "ordering_key": "conv_1"} for n in range(3)]
    events.append({"event": "message.created", "data": {**DATA, "n": 3}, "ordering_key": "conv_2"})
    response = batch(api, events)
    assert [r["result"] for r in response.json()["results"]] == ["created"] * 4
    ids = [r["id"] for r in response.json()["results"]]
    stored = dict(Event.objects.filter(pk__in=ids).values_list("pk", "ordering_key"))
    assert [stored[i] for i in ids] == ["conv_1"] * 3 + ["conv_2"]

    def sent_now(webhook):  # handed to the workers at once: a dispatch lease and a due time
        rows = {d.event_id: d for d in Delivery.objects.filter(webhook=webhook)}
        return [rows[i].lease_token is not None and rows[i].next_attempt_at is not None for i in ids]

    assert sent_now(ordered) == [True, False, False, True], "conv_1's later events wait behind its first"
    assert sent_now(unordered) == [True] * 4
    by_event = {d.event_id: d for d in Delivery.objects.filter(webhook=ordered)}
    sequences = [by_event[i].sequence for i in ids[:3]]
    assert sequences == sorted(sequences), "numbered in the batch's order"


def test_a_batch_applies_each_webhooks_filter_as_a_single_publish_does(api, site, webhook_factory):
    high = webhook_factory(site=site, events=["ticket.created"], filter={"priority": "high"})
    every = webhook_factory(site=site, events=["ticket.created"])
    events = [{"event": "ticket.created", "data": {"ticket_id": f"T-{n}", "priority": p}} for n, p in enumerate(["high", "low"])]
    results = batch(api, events).json()["results"]
    assert [r["deliveries"] for r in results] == [2, 1]
    assert list(Delivery.objects.filter(webhook=high).values_list("event_id", flat=True)) == [results[0]["id"]]
    assert Delivery.objects.filter(webhook=every).count() == 2
