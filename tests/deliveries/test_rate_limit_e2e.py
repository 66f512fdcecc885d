"""A webhook's rate limit holds across worker processes: two workers deliver 200 events to a
webhook limited to 20 a second in about ten seconds, nothing failed, while an unlimited webhook
beside it gets its 200 at once."""

import time

import pytest
from django.db import transaction

from deliveries.models import Delivery
from deliveries.services.publish import event_publish
from subscriptions.models import Webhook
from subscriptions.selectors import webhook_rate_held_until
from subscriptions.services import webhook_create
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EVENTS = 200


@pytest.fixture
def unlimited_receiver():
    r = Receiver()
    yield r
    r.close()


def test_two_workers_keep_a_webhook_to_20_a_second_and_an_unlimited_one_is_not_slowed(
    site, receiver, unlimited_receiver, workers
):
    limited = webhook_create(site=site, url=receiver.url, events=["ticket.created"], rate_limit={"per_second": 20})
    webhook_create(site=site, url=unlimited_receiver.url, events=["ticket.created"])
    workers.start()
    workers.start(beat=False)

    started = time.time()
    with transaction.atomic():
        for n in range(EVENTS):
            event_publish(site=site, event_type="ticket.created", data={"n": n})
    unlimited_done = unlimited_receiver.wait_for(EVENTS, timeout=30)[-1].at - started
    held = webhook_rate_held_until(webhook=Webhook.objects.get(pk=limited.pk))
    arrivals = [r.at for r in receiver.wait_for(EVENTS, timeout=40)]
    took = max(arrivals) - started

    assert 9.0 <= took <= 13.5, f"200 at 20/s took {took:.1f} s"
    # Across both workers, no second holds more than the limit (a little slack for clock jitter).
    busiest = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    assert busiest <= 22, f"{busiest} requests within one second"
    assert unlimited_done < 6.0, f"the unlimited webhook took {unlimited_done:.1f} s"
    assert held is not None, "the API shows the limited webhook held back while its queue drains"

    deadline = time.monotonic() + 15
    while Delivery.objects.filter(webhook=limited, status="pending").exists():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    statuses = set(Delivery.objects.filter(webhook=limited).values_list("status", flat=True))
    assert statuses == {"succeeded"}, "waiting for the limit is never a failure"
    assert not Delivery.objects.filter(webhook=limited, attempt_count__gt=1).exists(), "nor an attempt"
    assert len(receiver.received) == EVENTS
