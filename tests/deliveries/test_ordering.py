"""Ordered delivery (docs/ordering.md) without workers: the head check in the claim, take and probe
statements (both implementations), the next of a key handed out when its head ends, retry and
skip against the order, and what the API and the admin show and take."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from deliveries import bulk
from deliveries.bulk import portable, postgresql
from deliveries.models import Delivery, Event
from deliveries.services import operator, send
from deliveries.services.publish import event_publish
from domain import services as domain
from subscriptions.models import Webhook

pytestmark = pytest.mark.django_db


@pytest.fixture(params=[postgresql, portable], ids=["postgresql", "portable"])
def statements(request, monkeypatch):
    monkeypatch.setattr(bulk, "implementation", lambda: request.param)
    return request.param


@pytest.fixture(autouse=True)
def _engine_stopped_afterwards():
    yield
    send.engine.engine_stop(timeout=5)


@pytest.fixture
def handed(monkeypatch):
    """What the services hand to the workers (the outbox), instead of queueing Celery messages."""
    out: list[str] = []
    monkeypatch.setattr(send.outbox.this_process(), "put", lambda ids, token: out.extend(ids))
    monkeypatch.setattr(send.outbox, "enqueue", lambda ids, token: out.extend(ids))
    return out


def publish(site, key, n=0, **kwargs) -> Event:
    with transaction.atomic():
        event, _ = event_publish(site=site, event_type="ticket.created", data={"n": n}, ordering_key=key, **kwargs)
    return event


def delivery_of(event: Event, webhook: Webhook) -> Delivery:
    return Delivery.objects.get(event=event, webhook=webhook)


def expire_leases() -> None:
    Delivery.objects.update(leased_until=None, lease_token=None)


def finish(delivery: Delivery, status: str = "succeeded") -> None:
    Delivery.objects.filter(pk=delivery.pk).update(status=status, leased_until=None, lease_token=None, next_attempt_at=None)


def test_only_the_head_of_each_key_is_claimed_and_unordered_deliveries_all_are(statements, site, webhook_factory):
    keyed = webhook_factory(site=site, ordering="key")
    whole = webhook_factory(site=site, ordering="webhook")
    free = webhook_factory(site=site)
    a0, b0, a1, none = publish(site, "A", 0), publish(site, "B", 1), publish(site, "A", 2), publish(site, None, 3)
    expire_leases()
    now = timezone.now() + timedelta(seconds=1)

    claimed = set(bulk.claim_due(now=now, limit=100, until=now + timedelta(seconds=30), token="t"))

    expected = {
        delivery_of(a0, keyed).id,
        delivery_of(b0, keyed).id,
        delivery_of(none, keyed).id,  # no key: unordered even on a webhook ordered by key
        delivery_of(a0, whole).id,  # a webhook ordered as a whole: one key for all of them
        *(delivery_of(e, free).id for e in (a0, b0, a1, none)),
    }
    assert claimed == expected
    assert delivery_of(a1, keyed).ordering_key == "A" and delivery_of(a1, free).ordering_key is None
    assert {delivery_of(e, whole).ordering_key for e in (a0, b0, a1, none)} == {""}


def test_a_delivery_published_behind_a_pending_one_of_its_key_gets_no_lease_nor_message(statements, site, webhook_factory):
    keyed, free = webhook_factory(site=site, ordering="key"), webhook_factory(site=site)
    first, second, other = publish(site, "A", 0), publish(site, "A", 1), publish(site, "B", 2)
    assert delivery_of(first, keyed).lease_token is not None
    assert delivery_of(second, keyed).lease_token is None, "it goes when the one before it ends"
    assert delivery_of(second, keyed).next_attempt_at is None, "not due: the sweep does not scan it"
    assert delivery_of(other, keyed).lease_token is not None
    assert delivery_of(second, free).lease_token is not None


def test_the_outbox_hands_out_a_delivery_stored_behind_a_head_that_ended_meanwhile(site, webhook_factory, monkeypatch):
    keyed = webhook_factory(site=site, ordering="key")
    first, second = publish(site, "A", 0), publish(site, "A", 1)
    sent = []
    monkeypatch.setattr(send.outbox, "enqueue", lambda ids, token: sent.append((ids, token)))
    monkeypatch.setattr(
        send.outbox.connection if hasattr(send.outbox, "connection") else send.outbox, "close", None, raising=False
    )
    behind = delivery_of(second, keyed)
    finish(delivery_of(first, keyed))
    send.outbox.enqueue_next([behind.id])
    ((ids, token),) = sent
    assert ids == [behind.id] and Delivery.objects.get(pk=behind.id).lease_token == token


def test_take_drops_the_lease_of_a_delivery_behind_its_head_and_the_next_goes_when_the_head_ends(
    statements, site, webhook_factory
):
    keyed = webhook_factory(site=site, ordering="key")
    first, second = publish(site, "A", 0), publish(site, "A", 1)
    head, behind = delivery_of(first, keyed), delivery_of(second, keyed)
    now = timezone.now()
    Delivery.objects.update(lease_token="t", leased_until=now + timedelta(seconds=30))

    taken, waiting = bulk.take(ids=[head.id, behind.id], token="t", until=now + timedelta(seconds=60))

    assert [t.id for t in taken] == [head.id] and taken[0].ordering_key == "A"
    assert waiting == [behind.id]
    assert Delivery.objects.get(pk=behind.id).lease_token is None
    assert bulk.claim_next(ids=[head.id], now=now, until=now + timedelta(seconds=30), token="n") == []  # head still sending
    finish(head, "failed")
    assert bulk.claim_next(ids=[head.id], now=now + timedelta(seconds=1), until=now + timedelta(seconds=30), token="n") == [
        behind.id
    ]
    assert Delivery.objects.get(pk=behind.id).lease_token == "n"


def test_a_paused_webhooks_next_delivery_is_not_handed_out_when_its_head_ends(statements, site, webhook_factory):
    keyed = webhook_factory(site=site, ordering="key")
    first, second = publish(site, "A", 0), publish(site, "A", 1)
    expire_leases()
    Webhook.objects.filter(pk=keyed.pk).update(enabled=False)
    finish(delivery_of(first, keyed))
    now = timezone.now() + timedelta(seconds=1)
    assert bulk.claim_next(ids=[delivery_of(first, keyed).id], now=now, until=now, token="n") == []
    assert bulk.claim_stalled(now=now, limit=10, until=now + timedelta(seconds=30), token="s") == []
    Webhook.objects.filter(pk=keyed.pk).update(enabled=True)
    # It waits with no due time: the sweep's safety net for stalled keys hands it out once enabled.
    assert bulk.claim_due(now=now, limit=10, until=now + timedelta(seconds=30), token="s") == []
    assert bulk.claim_stalled(now=now, limit=10, until=now + timedelta(seconds=30), token="s") == [delivery_of(second, keyed).id]
    assert Delivery.objects.get(pk=delivery_of(second, keyed).pk).next_attempt_at == now


def test_the_sweep_hands_out_a_key_whose_next_delivery_was_never_handed_out(statements, site, webhook_factory, handed):
    keyed = webhook_factory(site=site, ordering="key")
    first, second, third = publish(site, "A", 0), publish(site, "A", 1), publish(site, "B", 2)
    expire_leases()
    finish(delivery_of(first, keyed))  # as if its worker was killed right after recording it
    handed.clear()

    send.deliveries_sweep()

    assert set(handed) == {delivery_of(second, keyed).id, delivery_of(third, keyed).id}
    assert len(handed) == 2


def test_the_probe_of_an_open_circuit_is_the_head_of_a_key(site, webhook_factory):
    from deliveries.engine import endpoint_health

    keyed = webhook_factory(site=site, ordering="key")
    first, second = publish(site, "A", 0), publish(site, "A", 1)
    expire_leases()
    # The later delivery is due first: without the head check it would be the probe.
    Delivery.objects.filter(pk=delivery_of(second, keyed).pk).update(next_attempt_at=timezone.now() - timedelta(hours=1))
    now = timezone.now()
    Webhook.objects.filter(pk=keyed.pk).update(circuit_opened_at=now - timedelta(minutes=5), circuit_probe_at=now)
    probes = endpoint_health.probes_claim(now=now + timedelta(seconds=1), until=now + timedelta(seconds=30), token="p")
    assert probes == [delivery_of(first, keyed).id]


@pytest.mark.django_db(transaction=True)  # the engine records on its own thread and connection
def test_an_ended_head_hands_out_the_next_of_its_key_at_once(site, webhook_factory, handed, receiver):
    keyed = webhook_factory(site=site, ordering="key", url=receiver.url)
    first, second = publish(site, "A", 0), publish(site, "A", 1)
    head, behind = delivery_of(first, keyed), delivery_of(second, keyed)
    handed.clear()

    assert send.deliveries_send(ids=[head.id, behind.id], token=head.lease_token, wait=True) == 1

    assert Delivery.objects.get(pk=head.id).status == "succeeded"
    assert handed == [behind.id], "the next of the key is handed to the workers when its head succeeds"
    assert send.deliveries_send(ids=[behind.id], token=Delivery.objects.get(pk=behind.id).lease_token, wait=True) == 1
    assert [len(receiver.received), Delivery.objects.get(pk=behind.id).status] == [2, "succeeded"]


def test_a_retried_delivery_goes_after_those_already_waiting_on_its_key(site, webhook_factory, handed):
    keyed = webhook_factory(site=site, ordering="key")
    first, second, third = publish(site, "A", 0), publish(site, "A", 1), publish(site, "A", 2)
    expire_leases()
    finish(delivery_of(first, keyed), "failed")

    operator.delivery_retry(delivery=delivery_of(first, keyed))
    expire_leases()
    now = timezone.now() + timedelta(seconds=1)

    order = list(Delivery.objects.filter(webhook=keyed, status="pending").order_by("sequence").values_list("event_id", flat=True))
    assert order == [second.id, third.id, first.id]
    assert bulk.claim_due(now=now, limit=10, until=now + timedelta(seconds=30), token="s") == [], "the retry waits"
    assert bulk.claim_stalled(now=now, limit=10, until=now + timedelta(seconds=30), token="s") == [delivery_of(second, keyed).id]


def test_skip_through_the_api_fails_the_head_says_who_and_releases_the_next(
    site, api, webhook_factory, handed, django_capture_on_commit_callbacks
):
    keyed = webhook_factory(site=site, ordering="key")
    first, second = publish(site, "A", 0), publish(site, "A", 1)
    expire_leases()
    head, behind = delivery_of(first, keyed), delivery_of(second, keyed)

    shown = api.get(f"/api/v1/deliveries/{behind.id}").json()
    assert (shown["ordering_key"], shown["waiting_behind"]) == ("A", head.id)
    assert api.get(f"/api/v1/deliveries/{head.id}").json()["waiting_behind"] is None

    handed.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/deliveries/{head.id}/skip")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "failed" and body["last_error"].startswith("skipped by API key")
    assert handed == [behind.id]
    assert api.get(f"/api/v1/deliveries/{behind.id}").json()["waiting_behind"] is None
    again = api.post(f"/api/v1/deliveries/{head.id}/skip")
    assert again.status_code == 409 and "pending" in again.json()["message"]


def test_a_delivery_being_sent_cannot_be_skipped(site, api, webhook_factory):
    keyed = webhook_factory(site=site, ordering="key")
    head = delivery_of(publish(site, "A"), keyed)  # under its dispatch lease
    response = api.post(f"/api/v1/deliveries/{head.id}/skip")
    assert response.status_code == 409 and "being sent" in response.json()["message"]


def test_skip_from_the_admin_names_the_person_and_the_page_shows_what_a_delivery_waits_behind(
    site, webhook_factory, admin_client, admin_user, handed, django_capture_on_commit_callbacks
):
    keyed = webhook_factory(site=site, ordering="key")
    first, second = publish(site, "A", 0), publish(site, "A", 1)
    expire_leases()
    head, behind = delivery_of(first, keyed), delivery_of(second, keyed)

    page = admin_client.get(f"/admin/deliveries/delivery/{behind.id}/change/").content.decode()
    assert "waiting behind" in page.lower() and head.id in page

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/deliveries/delivery/{head.id}/act/skip/")

    assert response.status_code == 302
    skipped = Delivery.objects.get(pk=head.id)
    assert (skipped.status, skipped.last_error) == ("failed", f"skipped by {admin_user.get_username()}")
    assert handed == [behind.id]


def test_webhook_ordering_through_the_api(api):
    created = api.post("/api/v1/webhooks", {"url": "https://example.com/hook", "events": ["*"]}, format="json")
    assert created.status_code == 201 and created.json()["ordering"] == "none"
    webhook_id = created.json()["id"]

    changed = api.patch(f"/api/v1/webhooks/{webhook_id}", {"ordering": "key"}, format="json")
    assert changed.status_code == 200 and changed.json()["ordering"] == "key"
    assert api.patch(f"/api/v1/webhooks/{webhook_id}", {"description": "x"}, format="json").json()["ordering"] == "key"

    wrong = api.post("/api/v1/webhooks", {"url": "https://example.com/h", "ordering": "fifo"}, format="json")
    assert wrong.status_code == 400, wrong.json()
    assert "ordering" in wrong.json()["fields"]
    assert '"fifo" is not an ordering; choose one of none, key, webhook' in wrong.json()["message"]
    whole = api.post("/api/v1/webhooks", {"url": "https://example.com/h", "ordering": "webhook"}, format="json")
    assert whole.status_code == 201 and whole.json()["ordering"] == "webhook"


def test_an_events_ordering_key_is_stored_and_shown(api):
    body = {"event": "ticket.created", "data": {"n": 1}, "ordering_key": "order-42"}
    published = api.post("/api/v1/events", body, format="json")
    assert published.status_code == 201 and published.json()["ordering_key"] == "order-42"
    shown = api.get(f"/api/v1/events/{published.json()['id']}").json()
    assert shown["ordering_key"] == "order-42"
    assert published.json() == shown

    for wrong in ("", "k" * 201, 42):
        refused = api.post("/api/v1/events", {**body, "ordering_key": wrong}, format="json")
        assert refused.status_code == 400 and "ordering_key" in refused.json()["fields"], wrong
    assert api.post("/api/v1/events", {**body, "ordering_key": "k" * 200}, format="json").status_code == 201


def test_the_domains_events_carry_their_conversations_id_as_key(site):
    conversation = domain.conversation_create(site=site, channel="web")
    domain.message_create(conversation=conversation, sender_type="visitor", body="hi")
    domain.ticket_create(site=site, subject="help", conversation_id=conversation.id)
    domain.lead_create(site=site, conversation_id=conversation.id, email="a@example.com")
    domain.conversation_handoff(conversation=conversation, reason="asked")
    domain.conversation_close(conversation=conversation)
    keys = dict(Event.objects.filter(site=site).values_list("type", "ordering_key"))
    assert keys == dict.fromkeys(
        [
            "conversation.created",
            "message.created",
            "ticket.created",
            "lead.submit",
            "conversation.needs_human",
            "conversation.closed",
        ],
        conversation.id,
    )
