"""The limits a multi-tenant service needs (docs/limits.md): webhooks per site, requests per API key
(shared by every web process through Redis), failed API-key checks per address."""

import secrets

import pytest

from core import ratelimit
from tests.conftest import client_for
from tests.factories import SiteFactory

pytestmark = pytest.mark.django_db

HOOK = {"url": "https://crm.example.com/hooks", "events": ["message.created"]}


def test_a_site_past_its_webhook_cap_gets_a_400_that_says_so_and_other_sites_are_not_affected(settings):
    settings.AGENTBOT_MAX_WEBHOOKS_PER_SITE = 3
    site, other = SiteFactory(), SiteFactory()
    api = client_for(site)
    assert [api.post("/api/v1/webhooks", HOOK, format="json").status_code for _ in range(3)] == [201] * 3

    refused = api.post("/api/v1/webhooks", HOOK, format="json")

    assert refused.status_code == 400
    assert "3 webhooks already" in str(refused.json()) and "AGENTBOT_MAX_WEBHOOKS_PER_SITE" in str(refused.json())
    assert client_for(other).post("/api/v1/webhooks", HOOK, format="json").status_code == 201
    deleted = api.get("/api/v1/webhooks").json()["results"][0]["id"]
    assert api.delete(f"/api/v1/webhooks/{deleted}").status_code == 204
    assert api.post("/api/v1/webhooks", HOOK, format="json").status_code == 201, "a freed place can be taken"


def test_an_api_key_past_its_rate_gets_429_with_retry_after_and_another_key_does_not(settings):
    settings.AGENTBOT_API_RATE = 0.5
    settings.AGENTBOT_API_BURST = 3
    site = SiteFactory()
    api, other = client_for(site), client_for(site)
    assert [api.get("/api/v1/webhooks").status_code for _ in range(3)] == [200] * 3

    limited = api.get("/api/v1/webhooks")

    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1
    assert limited.json()["error"] == "throttled"
    assert other.get("/api/v1/webhooks").status_code == 200, "the limit is per key"


def test_the_rate_limit_is_kept_in_redis_so_every_web_process_shares_it(settings):
    assert settings.AGENTBOT_RATE_LIMIT_URL.startswith("redis://"), "the tests' broker is Redis"
    settings.AGENTBOT_API_RATE = 0.5
    settings.AGENTBOT_API_BURST = 2
    site = SiteFactory()
    api = client_for(site)
    assert [api.get("/api/v1/webhooks").status_code for _ in range(2)] == [200] * 2
    key = site.api_keys.get()
    # Another web process: its own connection to the same store, the same bucket.
    another_process = ratelimit._Redis(settings.AGENTBOT_RATE_LIMIT_URL)
    verdict = another_process.take(f"api-key:{key.pk}", settings.AGENTBOT_API_RATE, settings.AGENTBOT_API_BURST)
    assert not verdict.allowed and verdict.retry_after > 0


def test_guessing_api_keys_from_one_address_is_throttled(settings, api_client):
    settings.AGENTBOT_API_AUTH_FAILURE_RATE = 0.1
    settings.AGENTBOT_API_AUTH_FAILURE_BURST = 3
    # Addresses of their own: the buckets live in Redis, which outlives one run of the suite.
    address, other = (f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}" for _ in range(2))
    statuses = [
        api_client.get("/api/v1/webhooks", HTTP_AUTHORIZATION=f"Bearer wrong-{n}", REMOTE_ADDR=address).status_code
        for n in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
    elsewhere = api_client.get("/api/v1/webhooks", HTTP_AUTHORIZATION="Bearer wrong", REMOTE_ADDR=other)
    assert elsewhere.status_code == 401


def test_a_rate_of_zero_is_no_limit(settings):
    settings.AGENTBOT_API_RATE = 0
    api = client_for(SiteFactory())
    assert {api.get("/api/v1/webhooks").status_code for _ in range(20)} == {200}


def test_without_redis_each_process_keeps_its_own_buckets():
    local = ratelimit._Local()
    assert [local.take("k", 1.0, 2).allowed for _ in range(3)] == [True, True, False]


def test_publishing_events_counts_against_the_keys_rate_like_every_other_request(settings):
    # POST /api/v1/events has a lean path beside DRF's view (deliveries/api.py); both take from the key's bucket.
    settings.AGENTBOT_API_RATE = 0.5
    settings.AGENTBOT_API_BURST = 3
    api = client_for(SiteFactory())
    event = {"event": "message.created", "data": {"n": 1}}
    assert [api.post("/api/v1/events", event, format="json").status_code for _ in range(3)] == [201] * 3

    limited = api.post("/api/v1/events", event, format="json")

    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1
