"""Processing an inbound event in this process (no worker): what happens when attempts run out,
and repeated status events. The worker-driven flows are in test_chat2desk_e2e.py."""

import pytest
from django.test import Client

from domain.models import Conversation
from inbound import services
from inbound.models import InboundEvent
from tests.inbound.conftest import post_webhook

pytestmark = pytest.mark.django_db(transaction=True)


def received(integration, payload) -> InboundEvent:
    assert post_webhook(Client(), integration, payload).status_code == 200
    return InboundEvent.objects.filter(integration=integration).latest("received_at")


class Broken:
    def answer(self, **kwargs):
        raise RuntimeError("the responder broke")


def failed_attempt(integration, client_id: str) -> InboundEvent:
    """One attempt at a client's message, with the responder raising (see Broken)."""
    event = received(integration, {"text": "Hello?", "client_id": client_id})
    with pytest.raises(RuntimeError):
        services.inbound_process(event_id=event.id)
    event.refresh_from_db()
    return event


def test_when_the_last_attempt_fails_the_event_fails_and_the_client_goes_to_a_human(integration, settings, monkeypatch):
    settings.AGENTBOT_INBOUND_ATTEMPTS = 1
    monkeypatch.setattr(services, "responder", Broken)

    event = failed_attempt(integration, "c1")

    assert event.status == "failed" and "the responder broke" in event.outcome and event.attempts == 1
    conversation = Conversation.objects.get(integration=integration, external_id="c1")
    assert conversation.session == "paused" and "the responder broke" in conversation.handoff_reason
    assert conversation.messages.filter(sender_type="visitor").count() == 1


def test_a_failure_before_the_last_attempt_keeps_the_event_for_the_next(integration, settings, monkeypatch):
    settings.AGENTBOT_INBOUND_ATTEMPTS = 3
    monkeypatch.setattr(services, "responder", Broken)

    event = failed_attempt(integration, "c2")

    assert (event.status, event.attempts) == ("accepted", 1) and "the responder broke" in event.outcome
    assert Conversation.objects.get(external_id="c2").session == "active"


def test_an_event_whose_attempts_are_used_up_fails_when_handed_out_again(integration, settings, monkeypatch):
    settings.AGENTBOT_INBOUND_ATTEMPTS = 1
    settings.AGENTBOT_INBOUND_LEASE = 0
    monkeypatch.setattr(services, "responder", Broken)
    event = failed_attempt(integration, "c3")
    # As if that worker had died instead: the event is still pending when the sweep finds it.
    InboundEvent.objects.filter(pk=event.pk).update(status="accepted", outcome="")
    Conversation.objects.filter(external_id="c3").update(session="active")

    assert services.inbound_process(event_id=event.id) is None

    event.refresh_from_db()
    assert event.status == "failed" and event.outcome.startswith("gave up after 1 attempts: no attempt finished")
    assert Conversation.objects.get(external_id="c3").session == "paused"


def test_the_same_transfer_sent_twice_is_recorded_once(integration, knowledge):
    first = received(integration, {"text": "What are your opening hours?", "client_id": "c4", "request_id": 7, "dialog_id": 70})
    services.inbound_process(event_id=first.id)
    transfer = {"hook_type": "dialog_transferred", "request_id": 7, "dialog_id": 70}
    for _ in range(2):
        services.inbound_process(event_id=received(integration, transfer).id)

    conversation = Conversation.objects.get(external_id="c4")
    assert conversation.session == "paused"
    assert [(t["request_id"], t["dialog_id"]) for t in conversation.context["transfers"]] == [(7, 70)]
