"""The engine of a worker process (deliveries/engine/engine.py): a hanging webhook holds only its own
slots, and how many jobs a webhook may queue follows how fast it answers. Without a worker."""

import time

import pytest
from django.utils import timezone

from deliveries.engine import engine
from deliveries.models import Attempt, Delivery
from deliveries.services.send import attempts_record, deliveries_release, deliveries_send
from tests.deliveries.test_send import publish_one

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _engine_stopped_afterwards():
    # The engine's recorder thread holds a database connection of its own: close it before teardown.
    yield
    engine.engine_stop(timeout=5)


def test_a_hanging_webhook_holds_only_its_own_slots_and_its_overflow_waits_for_the_sweep(
    site, webhook_factory, receiver, settings
):
    settings.AGENTBOT_HTTP_TIMEOUT = 1.5
    settings.AGENTBOT_WEBHOOK_CONCURRENCY = 1
    settings.AGENTBOT_WEBHOOK_QUEUE_ROUNDS = 0
    receiver.responder = lambda n: (None, b"")  # never answers
    webhook_factory(site=site, url=receiver.url)
    first, second = publish_one(site), publish_one(site)

    assert deliveries_send(ids=[first.id], token=first.lease_token, wait=False) == 1
    receiver.wait_for(1)
    started, now = time.monotonic(), timezone.now()
    assert deliveries_send(ids=[second.id], token=second.lease_token, wait=False) == 0
    assert time.monotonic() - started < 1, "the task must not wait for the hanging webhook"

    # Not taken: it keeps its dispatch lease, cut short so the sweep offers it again soon.
    left = Delivery.objects.get(pk=second.pk)
    assert (left.lease_token, left.attempt_count, left.status) == (second.lease_token, 0, "pending")
    assert now < left.leased_until <= timezone.now() + engine.overflow_hold() < second.leased_until
    deadline = time.monotonic() + 10
    while Delivery.objects.get(pk=first.pk).attempt_count == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    (attempt,) = Attempt.objects.filter(delivery_id=first.id)
    assert attempt.status_code is None and attempt.error == "timed out after 1.5 s"


def test_a_webhook_not_heard_from_may_queue_hundreds_of_jobs_until_its_silence_says_otherwise(settings):
    settings.AGENTBOT_HTTP_TIMEOUT, settings.AGENTBOT_WEBHOOK_QUEUE_ROUNDS = 15.0, 2  # a 30 s queue budget
    settings.AGENTBOT_WEBHOOK_CONCURRENCY = 16
    sender = engine.engine(attempts_record, deliveries_release)

    # Unknown: one second per request is assumed, so a burst to a new webhook is taken, not deferred.
    assert sender.webhook_limit("wh_new") == 16 + 16 * 30 // 1
    # Holding jobs and silent for 10 s: at least 10 s per request, whatever its history says.
    sender.seconds_per_request["wh_hangs"] = 0.01
    sender.quiet_since["wh_hangs"] = time.monotonic() - 10
    assert 16 + 16 * 30 // 11 <= sender.webhook_limit("wh_hangs") <= 16 + 16 * 30 // 10
    # An answer ends the silence: the recent pace counts again.
    sender._pace("wh_hangs", 0.01)
    assert sender.webhook_limit("wh_hangs") > 16 * 30 / 0.02
