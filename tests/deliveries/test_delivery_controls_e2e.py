"""Delivery controls with a real worker and real receivers: Basic and bearer credentials checked
by the receiver, custom headers that arrive beside (never instead of) the signatures, and the
delivery log that shows the request without its credentials."""

import base64

import pytest
from django.db import transaction

from deliveries.models import Delivery
from deliveries.services.publish import event_publish
from subscriptions.services import webhook_create
from tests.deliveries.test_end_to_end import MESSAGE, verify_by_hand, wait_for_status
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def second_receiver():
    r = Receiver()
    yield r
    r.close()


def test_basic_and_bearer_are_checked_by_the_receiver_and_custom_headers_arrive_beside_the_signature(
    site, receiver, second_receiver, workers
):
    expected_basic = "Basic " + base64.b64encode(b"crm:pa ss:word").decode()
    receiver.authorize = lambda headers: headers.get("authorization") == expected_basic
    second_receiver.authorize = lambda headers: headers.get("authorization") == "Bearer tok-123"
    basic = webhook_create(
        site=site,
        url=receiver.url,
        events=["message.created"],
        auth={"type": "basic", "username": "crm", "password": "pa ss:word"},
        headers={"X-Tenant": "acme", "X-Api-Key": "gateway-key"},
    )
    bearer = webhook_create(
        site=site, url=second_receiver.url, events=["message.created"], auth={"type": "bearer", "token": "tok-123"}
    )
    workers.start()
    with transaction.atomic():
        event, _ = event_publish(site=site, event_type="message.created", data=MESSAGE)

    (request,) = receiver.wait_for(1)
    second_receiver.wait_for(1)
    for delivery in event.deliveries.all():
        wait_for_status(delivery.id, "succeeded")
    assert request.headers["x-tenant"] == "acme" and request.headers["x-api-key"] == "gateway-key"
    assert verify_by_hand(basic.secret, request.headers, request.body), "the signature is the service's own"

    logged = Delivery.objects.get(event=event, webhook=basic).attempts.get().request_headers
    assert logged["Authorization"] == "[redacted]" and logged["X-Api-Key"] == "[redacted]"
    assert logged["X-Tenant"] == "acme"
    bearer_logged = Delivery.objects.get(event=event, webhook=bearer).attempts.get().request_headers
    assert bearer_logged["Authorization"] == "[redacted]"


def test_a_wrong_credential_is_a_failed_attempt_with_the_receivers_401(site, receiver, workers):
    receiver.authorize = lambda headers: headers.get("authorization") == "Bearer right"
    webhook_create(site=site, url=receiver.url, events=["message.created"], auth={"type": "bearer", "token": "wrong"})
    workers.start(AGENTBOT_RETRY_SCHEDULE="0")
    with transaction.atomic():
        event, _ = event_publish(site=site, event_type="message.created", data=MESSAGE)
    failed = wait_for_status(event.deliveries.get().id, "failed")
    assert failed.last_status_code == 401
