"""The webhook channel's JWTs (seed 003), with real tokens of all four algorithms: the instance's
client secret (HS256, HS512) or the client's RSA key pair (RS256, RS512), made in the tests."""

import jwt
import pytest
from django.test import Client
from jwcrypto import jwe, jwk

from inbound import integrations
from inbound.models import InboundEvent
from tests.support.webhook_channel import post_hook, rsa_key_pair, token, v2_message

pytestmark = pytest.mark.django_db

ALGORITHMS = ["HS256", "HS512", "RS256", "RS512"]


@pytest.fixture(params=ALGORITHMS)
def instance(request, site, knowledge):
    algorithm = request.param
    keys = {"public_key": rsa_key_pair()[1]} if algorithm.startswith("RS") else {}
    return integrations.integration_create(
        site=site, connector_type="webhook", name="IVR", jwt_algorithm=algorithm, polling=False, **keys
    )


def wrong_key(instance) -> str:
    if instance.jwt_algorithm.startswith("HS"):
        return "not-the-client-secret-" + "x" * 60
    return rsa_key_pair("someone else")[0]


def assert_refused(response, phrase: str) -> None:
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["error"] == "invalid_token" and phrase in body["message"]
    assert not InboundEvent.objects.exists()


def test_a_valid_token_is_let_in_and_answered(instance, knowledge):
    response = post_hook(Client(), instance, v2_message("caller-1", "What are your opening hours?"))

    assert response.status_code == 200, response.content
    assert [m["val"] for m in response.json()["data"]] == [knowledge.answer]


def test_an_expired_token_is_401(instance):
    assert_refused(post_hook(Client(), instance, v2_message("caller-1", "hi"), expires_in=-120), "expired")


def test_a_token_signed_with_another_key_is_401(instance):
    response = post_hook(Client(), instance, v2_message("caller-1", "hi"), key=wrong_key(instance))
    assert_refused(response, "signature does not match")


def test_a_token_of_another_app_is_401(instance):
    assert_refused(post_hook(Client(), instance, v2_message("caller-1", "hi"), app_id="cs-someone-else"), "appId")


def test_a_token_for_another_user_is_401_invalid_access_token(instance):
    response = post_hook(Client(), instance, v2_message("caller-1", "hi"), userIdentity="caller-2")
    assert_refused(response, "Invalid access token")


def test_a_token_for_the_same_user_is_let_in(instance):
    response = post_hook(Client(), instance, v2_message("caller-1", "What are your opening hours?"), userIdentity="caller-1")
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    "authorization, phrase",
    [
        (None, "Authorization header"),
        ("Basic dXNlcjpwYXNz", "Authorization header"),
        ("bearer not.a.jwt", "not a JWT"),
    ],
)
def test_a_missing_or_malformed_authorization_is_401(site, authorization, phrase):
    instance = integrations.integration_create(site=site, connector_type="webhook")
    headers = {"Authorization": authorization} if authorization else {}
    response = Client().post(instance.webhook_path, v2_message("u", "hi"), content_type="application/json", headers=headers)
    assert_refused(response, phrase)


def test_a_token_signed_with_another_algorithm_is_401(site):
    instance = integrations.integration_create(site=site, connector_type="webhook", jwt_algorithm="HS512")
    forged = jwt.encode({"appId": instance.client_id}, instance.client_secret, algorithm="HS256")
    assert_refused(post_hook(Client(), instance, v2_message("u", "hi"), bearer=forged), "expects HS512")


def test_a_token_without_app_id_is_401(site):
    instance = integrations.integration_create(site=site, connector_type="webhook")
    bare = jwt.encode({"sub": "u"}, instance.client_secret, algorithm="HS256")
    assert_refused(post_hook(Client(), instance, v2_message("u", "hi"), bearer=bare), "no appId")


def test_after_rotation_the_old_client_secret_no_longer_verifies(site):
    instance = integrations.integration_create(site=site, connector_type="webhook")
    old = token(instance)
    integrations.integration_rotate_secret(integration=instance)
    assert_refused(post_hook(Client(), instance, v2_message("u", "hi"), bearer=old), "signature does not match")


# --- JSON Web Encryption (the npm jose round trip is in test_webhook_channel_features_e2e) ---------
def jwe_of(instance, inner: str, **header) -> str:
    key = jwk.JWK.from_pem(instance.jwe_public_key.encode())
    protected = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT", **header}
    encrypted = jwe.JWE(inner.encode(), protected=protected, algs=[protected["alg"], protected["enc"]])
    encrypted.add_recipient(key)
    return encrypted.serialize(compact=True)


@pytest.mark.parametrize("instance", ["RS512"], indirect=True)
def test_an_encrypted_token_is_verified_as_its_plain_jwt_is(instance):
    good = jwe_of(instance, token(instance))
    assert post_hook(Client(), instance, v2_message("caller-1", "What are your opening hours?"), bearer=good).status_code == 200
    expired = jwe_of(instance, token(instance, expires_in=-120))
    refused = post_hook(Client(), instance, v2_message("caller-1", "Hi"), bearer=expired)
    assert refused.status_code == 401 and "expired" in refused.json()["message"]


@pytest.mark.parametrize(
    "header, phrase",
    [
        ({"alg": "RSA1_5", "enc": "A128GCM"}, "decrypts alg RSA-OAEP or RSA-OAEP-256"),
        ({"enc": "A128CBC-HS256"}, "with enc A128GCM or A256GCM"),
        ({"zip": "DEF"}, "compressed"),
    ],
)
@pytest.mark.parametrize("instance", ["HS256"], indirect=True)
def test_an_encrypted_token_of_another_kind_is_401_saying_why(instance, header, phrase):
    refused = post_hook(Client(), instance, v2_message("caller-1", "Hi"), bearer=jwe_of(instance, token(instance), **header))
    assert_refused(refused, phrase)


@pytest.mark.parametrize("instance", ["HS256"], indirect=True)
def test_five_parts_that_are_no_jwe_are_401(instance):
    assert_refused(post_hook(Client(), instance, v2_message("caller-1", "Hi"), bearer="a.b.c.d.e"), "header")
