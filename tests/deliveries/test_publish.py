"""Publishing: the outbox is written in the caller's transaction and kicked only on commit."""

import pytest
from django.db import transaction

from deliveries.models import Delivery, Event
from deliveries.services.publish import EventTooLarge, PublishError, event_publish

pytestmark = pytest.mark.django_db

DATA = {"conversation_id": "conv_1", "message_id": "msg_1", "sender_type": "ai", "body": "Hello"}


def test_publish_stores_one_delivery_per_subscribed_enabled_webhook(site, webhook_factory, django_capture_on_commit_callbacks):
    wanted = webhook_factory(site=site, events=["message.created"])
    everything = webhook_factory(site=site, events=["*"])
    webhook_factory(site=site, events=["ticket.created"])
    paused = webhook_factory(site=site, events=["*"], enabled=False)
    webhook_factory(site=site, events=["*"], enabled=False, disabled_reason="the receiver answered 410 Gone")
    webhook_factory(events=["*"])  # another site's

    with django_capture_on_commit_callbacks() as callbacks:
        event, created = event_publish(site=site, event_type="message.created", data=DATA)

    assert created and event.id.startswith("evt_")
    deliveries = Delivery.objects.filter(event=event)
    assert {d.webhook_id for d in deliveries} == {wanted.id, everything.id, paused.id}
    assert all(d.status == "pending" for d in deliveries)
    # A paused webhook's delivery waits, unleased and never handed out, until it is enabled.
    assert {d.webhook_id for d in deliveries if d.lease_token} == {wanted.id, everything.id}
    assert len(callbacks) == 1, "workers are kicked once, on commit"


def test_rollback_stores_and_queues_nothing(site, webhook_factory, django_capture_on_commit_callbacks):
    webhook_factory(site=site)
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                event_publish(site=site, event_type="message.created", data=DATA)
                raise RuntimeError("the domain change failed")
    assert callbacks == []
    assert not Event.objects.exists() and not Delivery.objects.exists()


def test_same_idempotency_key_yields_one_event(site, webhook_factory, django_capture_on_commit_callbacks):
    webhook_factory(site=site)
    with django_capture_on_commit_callbacks() as callbacks:
        first, created_first = event_publish(site=site, event_type="message.created", data=DATA, idempotency_key="k1")
        again, created_again = event_publish(site=site, event_type="message.created", data=DATA, idempotency_key="k1")
    assert (created_first, created_again) == (True, False)
    assert first.pk == again.pk
    assert Event.objects.count() == 1 and Delivery.objects.count() == 1
    assert len(callbacks) == 1


def test_unknown_type_and_unsafe_numbers_are_refused(site):
    with pytest.raises(PublishError, match="unknown event type 'message.deleted'"):
        event_publish(site=site, event_type="message.deleted", data=DATA)
    with pytest.raises(PublishError, match=r"data\.count"):
        event_publish(site=site, event_type="message.created", data={**DATA, "count": 2**53 + 1})


def test_data_over_256_kb_is_refused_with_413(site):
    with pytest.raises(EventTooLarge) as caught:
        event_publish(site=site, event_type="message.created", data={**DATA, "body": "x" * (256 * 1024)})
    assert caught.value.status_code == 413 and "limit is 262144 bytes" in str(caught.value)
