"""OAuth2 client credentials end to end: a local token endpoint and a receiver that takes only the
tokens it issued. The token is fetched once and shared by the worker's deliveries, fetched again
after a 401 within the same attempt, and a token endpoint that fails or that the URL policy
refuses is an attempt failure that says why."""

import pytest
from django.db import transaction

from deliveries.engine import http, oauth
from deliveries.engine.endpoint_auth import OAuth2
from deliveries.services.publish import event_publish
from subscriptions.services import webhook_create
from tests.deliveries.test_end_to_end import wait_for_status
from tests.support.token_endpoint import TokenEndpoint

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def token_endpoint():
    endpoint = TokenEndpoint(client_id="agentbot", client_secret="s3cr3t/+=")
    yield endpoint
    endpoint.close()


def publish(site, n: int = 1):
    with transaction.atomic():
        events = [event_publish(site=site, event_type="ticket.created", data={"n": i})[0] for i in range(n)]
    return [e.deliveries.get() for e in events]


def oauth_webhook(site, url: str, token_url: str, **extra):
    auth = {"type": "oauth2", "token_url": token_url, "client_id": "agentbot", "client_secret": "s3cr3t/+=", **extra}
    return webhook_create(site=site, url=url, events=["ticket.created"], auth=auth)


def test_one_token_is_shared_by_the_deliveries_and_renewed_once_after_a_401(site, receiver, token_endpoint, workers):
    accepted = {"token-1"}
    receiver.authorize = lambda headers: headers.get("authorization", "").removeprefix("Bearer ") in accepted
    oauth_webhook(site, receiver.url, token_endpoint.url, scope="hooks:write", audience="https://crm.example.com")
    workers.start(AGENTBOT_RETRY_SCHEDULE="0,30")

    for delivery in publish(site, 5):
        wait_for_status(delivery.id, "succeeded")
    assert token_endpoint.issued == ["token-1"], "one token for the worker's deliveries"
    assert token_endpoint.requests[0] == {
        "grant_type": "client_credentials",
        "scope": "hooks:write",
        "audience": "https://crm.example.com",
    }

    accepted.clear()  # the receiver revokes token-1: the next delivery gets a 401 with it
    accepted.add("token-2")
    (delivery,) = publish(site)
    done = wait_for_status(delivery.id, "succeeded")
    assert token_endpoint.issued == ["token-1", "token-2"]
    assert done.attempt_count == 1, "the renewal is inside the attempt, which succeeded"
    assert done.attempts.get().request_headers["Authorization"] == "[redacted]"


def test_a_failing_token_endpoint_is_an_attempt_failure_with_its_reason(site, receiver, token_endpoint, workers):
    webhook_create(
        site=site,
        url=receiver.url,
        events=["ticket.created"],
        auth={"type": "oauth2", "token_url": token_endpoint.url, "client_id": "agentbot", "client_secret": "wrong"},
    )
    workers.start(AGENTBOT_RETRY_SCHEDULE="0")
    (delivery,) = publish(site)
    failed = wait_for_status(delivery.id, "failed")
    assert failed.last_error == "OAuth2 token not obtained: the token endpoint answered HTTP 401 (invalid_client)"
    assert receiver.received == [], "nothing is sent without a token"
    assert "wrong" not in failed.attempts.get().error


def test_a_private_token_url_is_refused_by_the_url_policy(settings):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    grant = OAuth2(token_url="http://127.0.0.1:9/token", client_id="c", client_secret="s")
    request = http.OutboundRequest("https://crm.example.com/hooks", b"{}", {})
    result = http.client().run(oauth.send_with_token("wh_private", grant, request))
    assert result.status_code is None
    assert result.error.startswith("OAuth2 token not obtained: refused:"), result.error
