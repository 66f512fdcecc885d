"""Delivery controls through the REST API: headers, auth, filter and rate limit are checked with
400s that name the bad part, and secrets are write-only and encrypted at rest."""

import pytest
from django.db import connection

from subscriptions.controls import RESERVED_HEADERS, header_reserved
from subscriptions.models import Webhook

pytestmark = pytest.mark.django_db

URL = "https://crm.example.com/hooks"


def create(api, **fields):
    return api.post("/api/v1/webhooks", {"url": URL, **fields}, format="json")


def message(response) -> str:
    assert response.status_code == 400, response.content
    return response.json()["message"]


def stored_column(webhook_id: str, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM subscriptions_webhook WHERE id = %s", [webhook_id])
        return cursor.fetchone()[0]


def test_headers_and_basic_auth_are_stored_and_the_password_is_never_shown(api):
    response = create(api, headers={"X-Tenant": "acme"}, auth={"type": "basic", "username": "crm", "password": "s3cret-pw"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["headers"] == {"X-Tenant": "acme"}
    assert body["auth"] == {"type": "basic", "username": "crm"}
    assert "s3cret-pw" not in response.content.decode()

    webhook = Webhook.objects.get(pk=body["id"])
    assert webhook.auth_secret == "s3cret-pw"
    assert "s3cret-pw" not in stored_column(webhook.id, "auth_secret"), "encrypted at rest"
    for path in (f"/api/v1/webhooks/{webhook.id}", "/api/v1/webhooks"):
        assert "s3cret-pw" not in api.get(path).content.decode()


def test_a_change_of_the_same_auth_type_without_its_secret_keeps_the_stored_one(api):
    webhook_id = create(api, auth={"type": "bearer", "token": "tok-1"}).json()["id"]
    response = api.patch(f"/api/v1/webhooks/{webhook_id}", {"auth": {"type": "bearer"}}, format="json")
    assert response.status_code == 200, response.content
    assert Webhook.objects.get(pk=webhook_id).auth_secret == "tok-1"

    response = api.patch(f"/api/v1/webhooks/{webhook_id}", {"auth": {"type": "basic", "username": "u"}}, format="json")
    assert message(response) == "auth: auth.password is required for basic auth"
    response = api.patch(f"/api/v1/webhooks/{webhook_id}", {"auth": {"type": "none"}}, format="json")
    assert response.json()["auth"] == {"type": "none"}
    assert Webhook.objects.get(pk=webhook_id).auth_secret == ""


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"X-Agentbot-Signature": "forged"}, "X-Agentbot-Signature cannot be set"),
        ({"webhook-signature": "v1,forged", "Content-Type": "text/plain"}, "Content-Type, webhook-signature cannot be set"),
        ({"x-webhook-signature": "t=1"}, "x-webhook-signature cannot be set"),
        ({"Authorization": "Bearer x"}, "Authorization cannot be set"),
        ({"Bad Name": "x"}, "'Bad Name' is not a header name"),
        ({"X-Ok": "line\r\nX-Injected: 1"}, "the value of X-Ok must not contain line breaks"),
        ({"X-Ok": 5}, "the value of X-Ok must be a string"),
        ({"X-Ok": "café"}, "the value of X-Ok must be ASCII text"),
        (["X-Ok"], "headers are an object"),
    ],
)
def test_bad_or_reserved_headers_are_refused_naming_them(api, headers, expected):
    assert expected in message(create(api, headers=headers))
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    "auth, expected",
    [
        ({"type": "digest"}, "auth.type must be one of none, basic, bearer, oauth2"),
        ({"type": "bearer"}, "auth.token is required for bearer auth"),
        ({"type": "basic", "password": "p"}, "auth.username is required for basic auth"),
        ({"type": "basic", "username": "a:b", "password": "p"}, "must not contain a colon"),
        ({"type": "bearer", "token": "t", "username": "u"}, "auth.username is not a field of bearer auth"),
        ({"type": "oauth2", "client_id": "c", "client_secret": "s"}, "auth.token_url is required"),
        ({"type": "oauth2", "token_url": "ftp://x", "client_id": "c", "client_secret": "s"}, "auth.token_url:"),
    ],
)
def test_bad_auth_is_refused_naming_the_field(api, auth, expected):
    assert expected in message(create(api, auth=auth))


def test_every_format_header_is_reserved():
    """The formats' own headers (deliveries/formats/) are all in the reserved set."""
    from deliveries.formats import FORMATS
    from deliveries.formats.types import Signing

    signing = Signing("dlv_1", "message.created", b"{}", ["whsec_" + "A" * 32], 1)
    for fmt in FORMATS.values():
        for name in fmt.headers(signing):
            assert header_reserved(name), f"{fmt.name}'s {name} can be overridden"
    assert "x-agentbot-delivery-id" not in RESERVED_HEADERS and header_reserved("X-Agentbot-Delivery-Id")


@pytest.mark.parametrize(
    "rate_limit, ok",
    [
        ({"per_second": 20}, True),
        ({"per_minute": 1}, True),
        ({"per_hour": 5}, False),
        ({"per_second": 0}, False),
        ({"per_second": 1.5}, False),
        ({"per_second": 1, "per_minute": 2}, False),
    ],
)
def test_rate_limit_is_per_second_or_per_minute(api, rate_limit, ok):
    response = create(api, rate_limit=rate_limit)
    if ok:
        assert response.status_code == 201 and response.json()["rate_limit"] == rate_limit
    else:
        assert message(response).startswith("rate_limit: ")


def test_bad_filters_are_400s_naming_the_bad_part(api):
    assert message(create(api, filter={"channel": {"$inn": ["whatsapp"]}})) == (
        "filter: filter.channel.$inn: unknown operator '$inn'; known: $eq, $neq, $in, $nin, $exists, $gt, $gte, $lt, $lte"
    )
    assert "filter.$or: $or takes a non-empty list" in message(create(api, filter={"$or": []}))
    assert "filter.amount.$gt: $gt compares with a number or a string" in message(create(api, filter={"amount": {"$gt": [1]}}))
    assert "filter: a filter is an object" in message(create(api, filter=["channel"]))


def test_filter_test_tries_the_saved_filter_or_another_on_example_data(api):
    webhook_id = create(api, filter={"channel": {"$in": ["whatsapp", "telegram"]}}).json()["id"]
    path = f"/api/v1/webhooks/{webhook_id}/filter-test"
    assert api.post(path, {"data": {"channel": "telegram"}}, format="json").json()["matches"] is True
    assert api.post(path, {"data": {"channel": "web"}}, format="json").json()["matches"] is False
    other = {"ticket": {"priority": "high"}}
    answer = api.post(path, {"data": {"ticket": {"priority": "high"}}, "filter": other}, format="json").json()
    assert answer == {"matches": True, "filter": other}
    assert "filter.ticket.$bad" in message(api.post(path, {"data": {}, "filter": {"ticket": {"$bad": 1}}}, format="json"))
