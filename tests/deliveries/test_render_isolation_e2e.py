"""One site's enormous chat message must not stall another site's deliveries.

A real worker (two task threads, its event loop and recorder) sends site B a steady trickle while
site A's Slack, Discord and Teams webhooks get one event of 130,000 line breaks and about a megabyte
of markdown-looking text. Rendering is linear in what can be shown, so the trickle never waits for
it, and the big event's deliveries end like any other: succeeded, or failed with a reason.
"""

import threading
import time

import pytest
from django.db import connection, transaction

from deliveries.models import Delivery
from deliveries.services.publish import event_publish
from tests.factories import SiteFactory, WebhookFactory
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ANSWERS = {"discord": (204, b""), "slack": (200, b"ok"), "teams": (202, b"")}
MARKDOWN = "# heading **bold** _it_ ~~x~~ `code` [link](https://e.example) @everyone <@123> & <b>\n> quote\n- item\n12. item\n"
TRICKLE_EVERY = 0.1


def big_text() -> str:
    text = "Hello" + "\n" * 130_000 + "plain words, then markdown\n" + MARKDOWN * (1_000_000 // len(MARKDOWN))
    assert text.count("\n") >= 130_000 and len(text) >= 1_000_000
    return text


def test_a_huge_chat_message_neither_stalls_another_sites_trickle_nor_stays_unattempted(workers, settings):
    settings.AGENTBOT_MAX_EVENT_DATA_BYTES = 4 * 1024 * 1024  # an event bigger than the API accepts
    receivers = {name: Receiver() for name in (*ANSWERS, "trickle")}
    try:
        for name, answer in ANSWERS.items():
            receivers[name].responder = lambda n, answer=answer: answer
        big_site, other_site = SiteFactory(), SiteFactory()
        chat = [WebhookFactory(site=big_site, url=receivers[f].url, events=["message.created"], format=f) for f in ANSWERS]
        WebhookFactory(site=other_site, url=receivers["trickle"].url, events=["message.created"])
        workers.start(concurrency=2)

        stop, failures = threading.Event(), []

        def trickle():
            n = 0
            try:
                while not stop.is_set():
                    n += 1
                    with transaction.atomic():
                        event_publish(
                            site=other_site,
                            event_type="message.created",
                            data={"conversation_id": "conv_t", "sender_type": "visitor", "body": f"tick {n}"},
                        )
                    time.sleep(TRICKLE_EVERY)
            except Exception as exc:  # noqa: BLE001 - a failed publish is what this test looks for
                failures.append(repr(exc))
            finally:
                connection.close()

        publisher = threading.Thread(target=trickle)
        publisher.start()
        try:
            receivers["trickle"].wait_for(10)  # the trickle flows
            window_from = time.time()
            data = {"conversation_id": "conv_big", "sender_type": "visitor", "visitor_name": "#1. Ada", "body": big_text()}
            with transaction.atomic():
                event, _ = event_publish(site=big_site, event_type="message.created", data=data)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ended = Delivery.objects.filter(event_id=event.id, status__in=["succeeded", "failed"]).count()
                if ended == len(chat):
                    break
                time.sleep(0.2)
            time.sleep(3)  # and the trickle keeps flowing after it
        finally:
            stop.set()
            publisher.join(timeout=30)

        arrivals = [r.at for r in receivers["trickle"].received if r.at >= window_from]
        gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
        assert failures == []
        assert len(arrivals) > 10, "the trickle kept arriving"
        assert max(gaps) < 1.0, f"the trickle stalled for {max(gaps):.2f} s"
        for delivery in Delivery.objects.filter(event_id=event.id):
            assert delivery.attempt_count >= 1, f"{delivery.id} was never attempted"
            assert delivery.status == "succeeded" or (delivery.status == "failed" and delivery.last_error), (
                delivery.status,
                delivery.last_error,
            )
        for name in ANSWERS:
            (request,) = receivers[name].received
            assert len(request.body) < 64 * 1024, "cut to the platform's limits"
    finally:
        for r in receivers.values():
            r.close()
