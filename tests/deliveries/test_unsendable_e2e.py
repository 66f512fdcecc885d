"""A delivery that cannot be rendered or signed is an attempt that says why, and holds up nothing.

The deliveries are stored before the worker starts, so its first sweep hands all of them out in one
batch (AGENTBOT_SEND_BATCH), the bad ones first: the batch a bad delivery used to abort whole.
"""

import time

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deliveries import bulk
from deliveries.models import Attempt, Delivery, Event
from subscriptions.models import Webhook
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GOOD = 50


def stored_delivery(site, webhook, data: dict, at) -> Delivery:
    event = Event.objects.create(site=site, type="message.created", data=data, created_at=at)
    ((delivery_id, _),) = bulk.deliveries_create(event_id=event.id, webhook_ids=[webhook.id], now=at, until=None, token=None)
    return Delivery.objects.get(pk=delivery_id)


def wait_until_settled(ids: list[str], timeout: float = 30.0) -> list[Delivery]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(Delivery.objects.filter(pk__in=ids))
        if all(d.attempt_count > 0 for d in found):
            return found
        time.sleep(0.1)
    raise AssertionError(f"still unattempted: {[d.id for d in found if d.attempt_count == 0]}")


def test_unrenderable_and_unsignable_deliveries_fail_visibly_and_the_rest_of_their_batch_arrives_once(
    site, api, admin_client, client, webhook_factory, receiver, workers
):
    chatzuri = webhook_factory(site=site, url=receiver.url, events=["message.created"], format="chatzuri")
    unsignable = webhook_factory(site=site, url=receiver.url, events=["message.created"])
    start = timezone.now() - timezone.timedelta(minutes=1)
    bad_render = stored_delivery(site, chatzuri, {"sender_type": "visitor"}, start)
    bad_secret = stored_delivery(site, unsignable, {"sender_type": "visitor"}, start)
    good = [
        stored_delivery(
            site, chatzuri, {"sender_type": "visitor", "body": f"hello {n}"}, start + timezone.timedelta(seconds=n + 1)
        )
        for n in range(GOOD)
    ]
    with connection.cursor() as cursor:
        # Text no publish stores (JSON.parse reads 1e400 as Infinity), as data written before this
        # service checked it, or by hand, might hold; and a secret written under another key.
        cursor.execute(
            "UPDATE deliveries_event SET data = %s::json WHERE id = %s",
            ['{"sender_type":"visitor","body":1e400}', bad_render.event_id],
        )
        cursor.execute("UPDATE subscriptions_webhook SET secret = %s WHERE id = %s", ["not-a-fernet-token", unsignable.id])

    workers.start(AGENTBOT_SEND_BATCH=str(GOOD + 10))
    settled = {d.id: d for d in wait_until_settled([bad_render.id, bad_secret.id] + [d.id for d in good])}

    received = receiver.wait_for(GOOD)
    time.sleep(1.5)  # sweeps every 0.5 s: a batch offered again would send again by now
    assert sorted(r.headers["x-agentbot-delivery-id"] for r in receiver.received) == sorted(d.id for d in good)
    assert len(received) == GOOD
    assert all(settled[d.id].status == "succeeded" and settled[d.id].attempt_count == 1 for d in good)

    failed = settled[bad_render.id]
    assert (failed.status, failed.attempt_count, failed.next_attempt_at) == ("failed", 1, None)
    (attempt,) = Attempt.objects.filter(delivery=failed)
    assert "chatzuri body cannot be rendered" in attempt.error and "not retried" in attempt.error
    assert attempt.status_code is None and not attempt.succeeded
    assert failed.last_error == attempt.error

    waiting = settled[bad_secret.id]
    assert (waiting.status, waiting.attempt_count) == ("pending", 1)
    assert waiting.next_attempt_at > timezone.now()  # moved on by its schedule: a key may come back
    (attempt,) = Attempt.objects.filter(delivery=waiting)
    assert "cannot sign" in attempt.error and "cannot be decrypted" in attempt.error
    assert "not-a-fernet-token" not in attempt.error
    # Not the endpoint's fault: its health is untouched.
    assert Webhook.objects.filter(pk=unsignable.pk).values_list("consecutive_failures", flat=True).get() == 0

    # Visible where people look: the API's delivery log, the admin's delivery page, the metrics.
    shown = api.get(f"/api/v1/deliveries/{failed.id}").json()
    assert shown["status"] == "failed" and "cannot be rendered" in shown["attempts"][0]["error"]
    page = admin_client.get(f"/admin/deliveries/delivery/{failed.id}/change/").content.decode()
    assert "cannot be rendered" in page
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(client.get("/metrics").content.decode())
        for sample in family.samples
    }
    assert samples[("agentbot_attempts_recent", (("outcome", "error"),))] == 2
    assert samples[("agentbot_deliveries_recent", (("format", "chatzuri"), ("status", "failed")))] == 1


def test_a_response_header_that_is_not_utf8_is_stored_and_holds_up_no_other_delivery(site, webhook_factory, receiver, workers):
    # aiohttp decodes such a header with surrogateescape; PostgreSQL refuses the lone surrogate,
    # and the recorder's statement for the whole batch with it.
    receiver.responder = lambda n: (200, b"ok", {"X-Legacy": "caf\xe9 \xff"})
    plain = Receiver()
    try:
        odd = webhook_factory(site=site, url=receiver.url, events=["message.created"])
        fine = webhook_factory(site=site, url=plain.url, events=["message.created"])
        at = timezone.now() - timezone.timedelta(seconds=5)
        deliveries = [stored_delivery(site, w, {"n": n}, at) for n in range(5) for w in (odd, fine)]
        workers.start()
        settled = wait_until_settled([d.id for d in deliveries])
        assert all((d.status, d.attempt_count) == ("succeeded", 1) for d in settled)
        time.sleep(1.5)
        assert len(receiver.received) == 5 and len(plain.received) == 5  # none sent twice
        attempt = Attempt.objects.filter(delivery__webhook=odd).first()
        assert attempt.response_headers["X-Legacy"] == "caf? ?"
    finally:
        plain.close()
