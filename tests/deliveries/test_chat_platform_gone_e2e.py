"""A chat platform's permanent answers end a webhook's deliveries as a 410 does; its temporary ones
keep the schedule. A real worker posts to local receivers answering as Slack and Discord do."""

import json
import time

import pytest
from django.db import transaction
from django.utils.html import escape

from deliveries.models import Delivery, Event
from deliveries.services.operator import webhook_send_test
from subscriptions.models import Webhook
from tests.conftest import client_for
from tests.deliveries.test_end_to_end import wait_for_status
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UNKNOWN_WEBHOOK = json.dumps({"message": "Unknown Webhook", "code": 10015}).encode()
INVALID_TOKEN = json.dumps({"message": "Invalid Webhook Token", "code": 50027}).encode()
RATE_LIMITED = json.dumps({"message": "You are being rate limited.", "retry_after": 0.5, "global": False}).encode()

# (format, the platform's answer, the reason the webhook is disabled with)
PERMANENT = [
    ("slack", (404, b"no_service"), "Slack answered 404 no_service: the incoming webhook was removed or disabled in Slack"),
    ("slack", (404, b"channel_not_found"), "Slack answered 404 channel_not_found: the webhook's channel was deleted in Slack"),
    (
        "slack",
        (410, b"channel_is_archived"),
        "Slack answered 410 channel_is_archived: the webhook's channel is archived in Slack",
    ),
    (
        "slack",
        (404, b"channel_is_archived"),
        "Slack answered 404 channel_is_archived: the webhook's channel is archived in Slack",
    ),
    ("discord", (404, UNKNOWN_WEBHOOK), "Discord answered 404 Unknown Webhook (10015): the webhook was deleted in Discord"),
    ("discord", (401, INVALID_TOKEN), "Discord answered 401: the webhook's token is no longer valid"),
]
# (format, the platform's first answer, its answer once it recovers)
TEMPORARY = [
    ("slack", (429, b"rate_limited", {"Retry-After": "1"}), (200, b"ok")),
    ("slack", (500, b"internal_error"), (200, b"ok")),
    ("slack", (404, b"some_proxy_said_not_found"), (200, b"ok")),
    ("discord", (429, RATE_LIMITED, {"Retry-After": "1"}), (204, b"")),
    ("discord", (503, b"upstream connect error"), (204, b"")),
    ("discord", (404, b'{"message": "404: Not Found", "code": 0}'), (204, b"")),
]


def send_test(webhook) -> Delivery:
    with transaction.atomic():
        return webhook_send_test(webhook=webhook).deliveries.get()


def wait_disabled(webhook: Webhook, timeout: float = 15.0) -> Webhook:
    # Health is folded in its own transaction right after the attempt is stored, so it may trail it.
    deadline = time.monotonic() + timeout
    while Webhook.objects.get(pk=webhook.pk).enabled:
        assert time.monotonic() < deadline, f"{webhook.format} webhook not disabled"
        time.sleep(0.05)
    return Webhook.objects.get(pk=webhook.pk)


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(responder) -> Receiver:
        receiver = Receiver()
        receiver.responder = responder
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


def test_a_platforms_answer_that_the_webhook_is_gone_disables_it_like_a_410(
    site, webhook_factory, receivers, workers, admin_client
):
    owner = webhook_factory(site=site, url="https://owner.example.com/h", events=["webhook.disabled"])
    gone = [
        (webhook_factory(site=site, url=receivers(lambda n, a=answer: a).url, events=["ticket.created"], format=fmt), reason)
        for fmt, answer, reason in PERMANENT
    ]
    workers.start(AGENTBOT_RETRY_SCHEDULE="0,1,1,1")
    deliveries = [send_test(webhook) for webhook, _ in gone]

    api = client_for(site)
    for (webhook, reason), delivery in zip(gone, deliveries, strict=True):
        failed = wait_for_status(delivery.id, "failed")
        assert failed.attempt_count == 1, f"{reason}: not retried"
        assert failed.attempts.get().error.startswith(reason)
        disabled = wait_disabled(webhook)
        assert disabled.disabled_reason.startswith(reason) and disabled.disabled_at is not None
        shown = api.get(f"/api/v1/webhooks/{webhook.id}").json()
        assert shown["state"] == "disabled" and shown["disabled_reason"] == disabled.disabled_reason
        (notice,) = [e for e in Event.objects.filter(site=site, type="webhook.disabled") if e.data["webhook_id"] == webhook.id]
        assert notice.data["reason"] == disabled.disabled_reason
        assert list(notice.deliveries.values_list("webhook_id", flat=True)) == [owner.id]
    listed = admin_client.get("/admin/subscriptions/webhook/?health=disabled_by_service").content.decode()
    for webhook, _ in gone:
        assert escape(Webhook.objects.get(pk=webhook.pk).disabled_reason) in listed


def test_a_platforms_temporary_answer_keeps_the_schedule(site, webhook_factory, receivers, workers):
    cases = []
    for fmt, first, then in TEMPORARY:
        receiver = receivers(lambda n, first=first, then=then: first if n == 1 else then)
        cases.append((receiver, webhook_factory(site=site, url=receiver.url, events=["ticket.created"], format=fmt), first))
    workers.start(AGENTBOT_RETRY_SCHEDULE="0,1")
    deliveries = [send_test(webhook) for _, webhook, _ in cases]

    for (receiver, webhook, first), delivery in zip(cases, deliveries, strict=True):
        succeeded = wait_for_status(delivery.id, "succeeded")
        assert succeeded.attempt_count == 2, f"{webhook.format} {first[0]}: retried once, then delivered"
        assert len(receiver.received) == 2
        webhook.refresh_from_db()
        assert webhook.enabled and not webhook.disabled_reason
