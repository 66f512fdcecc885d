"""Secret rotation: during the grace period a receiver holding either secret verifies (where the
format's header holds several signatures); after it, only the new secret verifies."""

import hashlib
import hmac
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from core import jsjson
from deliveries.formats import get_format
from deliveries.formats.types import Envelope, Signing
from subscriptions.event_types import CATALOGUE
from subscriptions.models import Webhook
from tests.support.node import node_verify
from tests.support.receiver import Received

pytestmark = pytest.mark.django_db

LEAD = CATALOGUE["lead.submit"].example


def signed_request(webhook: Webhook) -> Received:
    """The request a delivery of a lead.submit would carry now, with the webhook's live secrets."""
    now = timezone.now()
    fmt = get_format(webhook.format)
    body = jsjson.dumps(fmt.build_body(Envelope.of("evt_1", "lead.submit", webhook.site_id, now, LEAD)))
    headers = fmt.headers(Signing("dlv_1", "lead.submit", body, webhook.signing_secrets(now), int(now.timestamp())))
    return Received("/hook", {name.lower(): value for name, value in headers.items()}, body, 0.0)


def verifies(format_name: str, secret: str, request: Received) -> bool:
    """An independent receiver: the standardwebhooks package, or the documents' Node code."""
    if format_name == "standard":
        try:
            StandardWebhook(secret).verify(request.body, request.headers)
        except WebhookVerificationError:
            return False
        return True
    (result,) = node_verify(format_name, secret, [request])
    return result["ok"]


def rotate(api, webhook: Webhook, grace_seconds: int) -> tuple[str, str]:
    old = webhook.secret
    response = api.post(f"/api/v1/webhooks/{webhook.id}/rotate-secret", {"grace_seconds": grace_seconds}, format="json")
    assert response.status_code == 200
    webhook.refresh_from_db()
    return old, response.json()["secret"]


@pytest.mark.parametrize(
    ("format_name", "new_verifies_during_grace"),
    [("agentbot", True), ("leads", True), ("standard", True), ("chatzuri", False)],
)
def test_during_grace_either_secret_verifies_and_after_it_only_the_new_one(
    api, site, webhook_factory, format_name, new_verifies_during_grace
):
    webhook = webhook_factory(site=site, format=format_name)
    old, new = rotate(api, webhook, grace_seconds=3600)
    assert new != old and new == webhook.secret

    during = signed_request(webhook)
    assert verifies(format_name, old, during)
    # chatzuri's header holds one signature, and it is made with the old secret until the grace ends.
    assert verifies(format_name, new, during) is new_verifies_during_grace

    Webhook.objects.filter(pk=webhook.pk).update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    webhook.refresh_from_db()
    after = signed_request(webhook)
    assert verifies(format_name, new, after)
    assert not verifies(format_name, old, after)


def test_grace_headers_put_the_old_signature_where_the_documents_receiver_reads(api, site, webhook_factory):
    agentbot = webhook_factory(site=site, format="agentbot")
    standard = webhook_factory(site=site, format="standard")
    rotate(api, agentbot, grace_seconds=60)
    rotate(api, standard, grace_seconds=60)

    request = signed_request(agentbot)
    t, *v1 = request.headers["x-agentbot-signature"].split(",")
    assert t.startswith("t=") and len(v1) == 2 and all(part.startswith("v1=") for part in v1)
    # Seed 002's receiver reads only the first v1: it is the old secret's during the grace period.
    signed = t.removeprefix("t=").encode() + b"." + request.body
    assert v1[1] == "v1=" + hmac.new(agentbot.secret.encode(), signed, hashlib.sha256).hexdigest()
    assert v1[0] == "v1=" + hmac.new(agentbot.previous_secret.encode(), signed, hashlib.sha256).hexdigest()
    assert len(signed_request(standard).headers["webhook-signature"].split(" ")) == 2


def test_rotation_without_grace_stops_the_old_secret_at_once(api, site, webhook_factory):
    webhook = webhook_factory(site=site, format="leads")
    old, new = rotate(api, webhook, grace_seconds=0)
    request = signed_request(webhook)
    assert request.headers["x-webhook-signature"].count("v1=") == 1
    assert verifies("leads", new, request) and not verifies("leads", old, request)
