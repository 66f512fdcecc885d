"""`POST|GET /api/webhook/{connectorType}/{integrationId}` (seed 000) through Django's test client.

No worker runs here: what the endpoint did is read from the `InboundEvent` rows it stored."""

import hashlib
import hmac
import json
import shutil
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from inbound import integrations
from inbound import services as inbound_services
from inbound.models import InboundEvent
from tests.inbound.conftest import post_webhook, signed

pytestmark = pytest.mark.django_db


@pytest.fixture
def integration(site):
    """A Chat2Desk integration without an API URL: receiving needs none (and no fake server)."""
    return integrations.integration_create(site=site, name="Support")


MESSAGE = {"text": "Hello, I need help with my order", "client_id": "12345678", "channel_id": "987654", "transport": "whatsapp"}


def url_of(integration) -> str:
    return f"/api/webhook/{integration.connector_type}/{integration.id}"


def post_raw(client, url: str, body: bytes, headers: dict | None = None):
    return client.generic("POST", url, body, content_type="application/json", headers=headers or {})


def assert_refused(response, status: int, error: str, phrase: str = "") -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["ok"] is False and body["error"] == error, body
    assert phrase in body["message"], body


# --- accepted -----------------------------------------------------------------------------------
@pytest.mark.parametrize("header", ["x-webhook-signature", "x-hub-signature-256"])
def test_a_signed_message_in_either_header_is_stored_normalised_and_answered_ok(client, integration, header):
    payload = {**MESSAGE, "unknown_extra": {"nested": True}}

    response = post_webhook(client, integration, payload, header=header)

    assert response.status_code == 200 and response.json() == {"ok": True}
    event = InboundEvent.objects.get(integration=integration)
    assert (event.kind, event.status) == ("message", "received")
    assert event.external_id == "", "without a delivery id nothing marks it as a replay of another"
    assert event.payload == MESSAGE, "the payload keeps the fields Agentbot uses and nothing else"


def test_the_signature_without_its_sha256_prefix_is_accepted_too(client, integration):
    body, signature = signed(integration.webhook_secret, MESSAGE)
    response = post_raw(client, url_of(integration), body, {"x-webhook-signature": signature.removeprefix("sha256=")})
    assert response.status_code == 200
    assert InboundEvent.objects.filter(integration=integration).count() == 1


def test_chat2desk_numbers_and_inbox_hook_are_kept_as_sent(client, integration):
    payload = {
        "hook_type": "inbox",
        "type": "from_client",
        "text": "Oi",
        "client_id": 42,
        "dialog_id": 7,
        "request_id": 9,
        "message_id": 555,
    }

    assert post_webhook(client, integration, payload).status_code == 200

    event = InboundEvent.objects.get(integration=integration)
    assert event.payload == {"text": "Oi", "client_id": 42, "dialog_id": 7, "request_id": 9}
    assert event.external_id == "555"


@pytest.mark.parametrize(
    "hook_type, action",
    [("close_dialog", "session_close"), ("close_request", "session_close"), ("dialog_transferred", "session_transfer_external")],
)
def test_status_events_are_stored_with_their_internal_action(client, integration, hook_type, action):
    response = post_webhook(client, integration, {"hook_type": hook_type, "request_id": 12345, "dialog_id": 67890})

    assert response.status_code == 200 and response.json() == {"ok": True}
    event = InboundEvent.objects.get(integration=integration)
    assert (event.kind, event.status) == ("status", "received")
    assert event.payload == {"hook_type": hook_type, "action": action, "request_id": 12345, "dialog_id": 67890}


def test_a_status_event_without_dialog_id_is_accepted(client, integration):
    assert post_webhook(client, integration, {"hook_type": "close_dialog", "request_id": 1}).status_code == 200
    assert InboundEvent.objects.get(integration=integration).payload == {
        "hook_type": "close_dialog",
        "action": "session_close",
        "request_id": 1,
    }


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"hook_type": "new_client", "client_id": 1}, "'new_client'"),
        ({"hook_type": "inbox", "type": "to_client", "text": "Our reply", "client_id": "1"}, "'to_client'"),
        ({"type": "to_client", "text": "An operator's message", "client_id": "1"}, "'to_client'"),
    ],
)
def test_what_agentbot_does_not_act_on_is_acknowledged_and_stored_as_ignored(client, integration, payload, reason):
    response = post_webhook(client, integration, payload)

    assert response.status_code == 200 and response.json() == {"ok": True}
    event = InboundEvent.objects.get(integration=integration)
    assert event.status == "ignored" and event.processed_at is not None
    assert reason in event.outcome


def test_a_redelivered_message_is_stored_once(client, integration):
    payload = {**MESSAGE, "message_id": "m-1"}

    first = post_webhook(client, integration, payload)
    again = post_webhook(client, integration, payload, header="x-hub-signature-256")

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == {"ok": True}
    assert InboundEvent.objects.filter(integration=integration).count() == 1
    assert post_webhook(client, integration, {**payload, "message_id": "m-2"}).status_code == 200
    assert InboundEvent.objects.filter(integration=integration).count() == 2


def test_identical_bodies_without_a_delivery_id_are_separate_messages_by_default(client, integration):
    yes = {**MESSAGE, "text": "yes"}

    responses = [post_webhook(client, integration, yes) for _ in range(2)]

    assert [r.status_code for r in responses] == [200, 200]
    events = InboundEvent.objects.filter(integration=integration)
    assert events.count() == 2, "a client who writes the same thing twice wrote two messages"
    assert {e.external_id for e in events} == {""}


@pytest.mark.parametrize(
    "extra, headers, external_id",
    [
        ({"event_id": "ev-9"}, {}, "event:ev-9"),
        ({}, {"X-Request-Id": "req-7"}, "request:req-7"),
        ({"message_id": 55, "event_id": "ev-9"}, {"X-Request-Id": "req-7"}, "55"),
    ],
)
def test_a_delivery_sent_again_with_its_event_or_request_id_is_stored_once(client, integration, extra, headers, external_id):
    payload = {**MESSAGE, **extra}
    body, signature = signed(integration.webhook_secret, payload)

    for _ in range(2):
        response = post_raw(client, url_of(integration), body, {"x-webhook-signature": signature, **headers})
        assert response.status_code == 200 and response.json() == {"ok": True}

    (event,) = InboundEvent.objects.filter(integration=integration)
    assert event.external_id == external_id


def test_a_status_event_sent_again_is_stored_again_even_with_body_de_duplication_on(client, integration, settings):
    settings.AGENTBOT_INBOUND_REPLAY_WINDOW = 300
    close = {"hook_type": "close_dialog", "request_id": 12345, "dialog_id": 67890}

    assert [post_webhook(client, integration, close).status_code for _ in range(2)] == [200, 200]

    events = InboundEvent.objects.filter(integration=integration, kind="status")
    assert events.count() == 2, "a close is applied whenever it arrives"


def test_a_replayed_body_without_a_message_id_is_stored_once_within_the_window(client, integration, settings):
    settings.AGENTBOT_INBOUND_REPLAY_WINDOW = 300
    first = post_webhook(client, integration, MESSAGE)
    replays = [post_webhook(client, integration, MESSAGE) for _ in range(3)]

    assert first.status_code == 200 and all(r.status_code == 200 and r.json() == {"ok": True} for r in replays)
    (event,) = InboundEvent.objects.filter(integration=integration)
    assert event.external_id.startswith("body:")
    assert post_webhook(client, integration, {**MESSAGE, "text": "Another question"}).status_code == 200
    assert InboundEvent.objects.filter(integration=integration).count() == 2, "a different body is a new message"


def test_a_body_without_a_message_id_counts_again_once_the_window_has_passed(client, integration, settings, monkeypatch):
    settings.AGENTBOT_INBOUND_REPLAY_WINDOW = 300
    assert post_webhook(client, integration, MESSAGE).status_code == 200
    later = timezone.now() + timedelta(seconds=301)
    monkeypatch.setattr(inbound_services.timezone, "now", lambda: later)
    assert post_webhook(client, integration, MESSAGE).status_code == 200
    assert InboundEvent.objects.filter(integration=integration).count() == 2


def test_the_same_message_id_on_two_integrations_is_two_events(client, site, integration):
    other = integrations.integration_create(site=site, name="Second account")
    payload = {**MESSAGE, "message_id": "m-1"}
    assert post_webhook(client, integration, payload).status_code == 200
    assert post_webhook(client, other, payload).status_code == 200
    assert InboundEvent.objects.filter(external_id="m-1").count() == 2


# --- signatures ---------------------------------------------------------------------------------
def hex_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "make_headers, error",
    [
        (lambda secret, body: {"x-webhook-signature": "sha256=" + "0" * 64}, "invalid_signature"),
        (lambda secret, body: {"x-webhook-signature": hex_signature("not-the-secret", body)}, "invalid_signature"),
        (lambda secret, body: {"x-hub-signature-256": hex_signature(secret, body + b" ")}, "invalid_signature"),
        (lambda secret, body: {"x-webhook-signature": "sha256=not-hex-at-all"}, "invalid_signature"),
        (lambda secret, body: {"x-webhook-signature": hex_signature(secret, body)[:-2]}, "invalid_signature"),
        (lambda secret, body: {"x-webhook-signature": ""}, "invalid_signature"),
        (lambda secret, body: {"x-signature": hex_signature(secret, body)}, "missing_signature"),
        (lambda secret, body: {}, "missing_signature"),
    ],
    ids=["wrong", "other-secret", "body-changed", "not-hex", "truncated", "empty", "other-header", "none"],
)
def test_a_missing_or_wrong_signature_is_401_and_nothing_is_stored(client, integration, make_headers, error):
    body = json.dumps(MESSAGE).encode()

    response = post_raw(client, url_of(integration), body, make_headers(integration.webhook_secret, body))

    assert_refused(response, 401, error, "sha256=" if error == "missing_signature" else "signature")
    assert not InboundEvent.objects.exists()


def test_a_body_changed_after_signing_is_401(client, integration):
    body, signature = signed(integration.webhook_secret, MESSAGE)
    changed = body.replace(b"12345678", b"87654321")

    response = post_raw(client, url_of(integration), changed, {"x-webhook-signature": signature})

    assert_refused(response, 401, "invalid_signature", "does not match")
    assert not InboundEvent.objects.exists()


def test_one_valid_signature_of_two_headers_is_enough(client, integration):
    body, signature = signed(integration.webhook_secret, MESSAGE)
    headers = {"x-webhook-signature": "sha256=" + "0" * 64, "x-hub-signature-256": signature}
    assert post_raw(client, url_of(integration), body, headers).status_code == 200


# The seed's verifySignature, verbatim but for the types; it throws on a length mismatch, which a
# receiver reports as "not verified".
SEED_VERIFIER = r"""
const { createHmac, timingSafeEqual } = require("crypto");
function verifySignature(body, signature, secret) {
  const expected = createHmac("sha256", secret).update(body).digest("hex");
  const received = signature.replace("sha256=", "");
  return timingSafeEqual(Buffer.from(expected, "hex"), Buffer.from(received, "hex"));
}
function sign(body, secret) {
  return "sha256=" + createHmac("sha256", secret).update(body).digest("hex");
}
const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean);
for (const line of lines) {
  const { body, signature, secret } = JSON.parse(line);
  let verified;
  try { verified = verifySignature(body, signature, secret); } catch (e) { verified = false; }
  process.stdout.write(JSON.stringify({ verified, signature: sign(body, secret) }) + "\n");
}
"""


def seed_node(cases: list[dict]) -> list[dict]:
    """Each case's {body, signature, secret} through the seed's Node code: whether verifySignature
    accepts the signature, and the signature Node computes for the body."""
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed")
    lines = "".join(json.dumps(case) + "\n" for case in cases)
    done = subprocess.run(["node", "-e", SEED_VERIFIER], input=lines, capture_output=True, text=True, timeout=30, check=True)
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_signatures_are_the_seeds_scheme_both_ways(client, integration):
    secret = integration.webhook_secret
    # Non-ASCII text, raw (not \u-escaped): the HMAC is over the UTF-8 bytes on both sides.
    bodies = [
        json.dumps(MESSAGE).encode(),
        json.dumps({"text": "Qual o horário de funcionamento? ☕", "client_id": "55"}, ensure_ascii=False).encode(),
    ]
    ours = [hex_signature(secret, body) for body in bodies]
    cases = [{"body": body.decode(), "signature": sig, "secret": secret} for body, sig in zip(bodies, ours, strict=True)]
    cases.append({**cases[0], "signature": hex_signature("another-secret", bodies[0])})
    cases.append({**cases[0], "body": cases[0]["body"].replace("order", "ordeR")})

    verdicts = seed_node(cases)

    assert [v["verified"] for v in verdicts] == [True, True, False, False], "the seed's verifier disagrees with our signer"
    assert [v["signature"] for v in verdicts[:2]] == ours
    for body, verdict in zip(bodies, verdicts[:2], strict=True):
        # What Node signed, our endpoint accepts (and the reverse held above).
        response = post_raw(client, url_of(integration), body, {"x-hub-signature-256": verdict["signature"]})
        assert response.status_code == 200, response.content
    assert InboundEvent.objects.get(payload__client_id="55").payload["text"] == "Qual o horário de funcionamento? ☕"


def test_after_rotation_only_the_new_secret_verifies(client, integration):
    old = integration.webhook_secret
    integration = integrations.integration_rotate_secret(integration=integration)
    assert_refused(post_webhook(client, integration, MESSAGE, secret=old), 401, "invalid_signature")
    assert post_webhook(client, integration, MESSAGE).status_code == 200


# --- which integration --------------------------------------------------------------------------
def test_an_inactive_integration_is_403_and_stores_nothing(client, integration):
    integrations.integration_update(integration=integration, active=False)

    response = post_webhook(client, integration, MESSAGE)

    assert_refused(response, 403, "integration_inactive", "not active")
    assert not InboundEvent.objects.exists()


def test_get_verification_of_an_inactive_integration_is_403(client, integration):
    integrations.integration_update(integration=integration, active=False)

    response = client.get(url_of(integration))

    assert_refused(response, 403, "integration_inactive", "not active")


def test_an_unknown_connector_is_404(client, integration):
    body, signature = signed(integration.webhook_secret, MESSAGE)
    response = post_raw(client, f"/api/webhook/telegram/{integration.id}", body, {"x-webhook-signature": signature})
    assert_refused(response, 404, "unknown_connector", "'telegram'")
    assert_refused(client.get(f"/api/webhook/telegram/{integration.id}"), 404, "unknown_connector")


UNKNOWN_INTEGRATION = "intg_" + "0" * 26


def test_an_unknown_integration_is_404(client, integration):
    body, signature = signed(integration.webhook_secret, MESSAGE)
    response = post_raw(client, f"/api/webhook/chat2desk/{UNKNOWN_INTEGRATION}", body, {"x-webhook-signature": signature})
    assert_refused(response, 404, "integration_not_found", UNKNOWN_INTEGRATION)
    assert_refused(client.get(f"/api/webhook/chat2desk/{UNKNOWN_INTEGRATION}"), 404, "integration_not_found")


@pytest.mark.parametrize("junk", ["int_doesnotexist", "intg_%00", "intg_0000000000000000000000000%00", "%00", "INTG_" + "0" * 26])
def test_an_integration_id_outside_the_id_grammar_is_404_in_the_endpoints_shape(client, integration, junk):
    body, signature = signed(integration.webhook_secret, MESSAGE)
    response = post_raw(client, f"/api/webhook/chat2desk/{junk}", body, {"x-webhook-signature": signature})
    assert response.status_code in (400, 404), response.content
    assert response.json()["ok"] is False and response.json()["message"]


def test_a_webchat_integration_has_no_http_webhook(client, site):
    webchat = integrations.integration_create(site=site, connector_type="webchat", name="Widget")
    body, signature = signed(webchat.webhook_secret, MESSAGE)

    as_chat2desk = post_raw(client, f"/api/webhook/chat2desk/{webchat.id}", body, {"x-webhook-signature": signature})
    as_webchat = post_raw(client, f"/api/webhook/webchat/{webchat.id}", body, {"x-webhook-signature": signature})

    assert_refused(as_chat2desk, 404, "integration_not_found")
    assert_refused(as_webchat, 404, "unknown_connector")
    assert not InboundEvent.objects.exists()


def test_get_verifies_the_url(client, integration):
    response = client.get(url_of(integration))
    assert response.status_code == 200 and response.json() == {"ok": True, "verified": True}


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_methods_are_405_with_a_json_error(client, integration, method):
    body, signature = signed(integration.webhook_secret, MESSAGE)

    response = client.generic(
        method, url_of(integration), body, content_type="application/json", headers={"x-webhook-signature": signature}
    )

    assert response.status_code == 405
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    assert response.json()["error"] == "method_not_allowed" and method in response.json()["message"]
    assert not InboundEvent.objects.exists()


# --- the body -----------------------------------------------------------------------------------
def post_signed_raw(client, integration, body: bytes):
    return post_raw(client, url_of(integration), body, {"x-webhook-signature": hex_signature(integration.webhook_secret, body)})


@pytest.mark.parametrize(
    "body, error, phrase",
    [
        (b"{not json", "invalid_json", "not valid JSON"),
        (b"", "invalid_json", "not valid JSON"),
        (b"\xff\xfe{}", "invalid_json", "not UTF-8"),
        (b"[1, 2]", "invalid_payload", "JSON object"),
        (b'"text"', "invalid_payload", "JSON object"),
        (b"null", "invalid_payload", "JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json", "nested more than 64"),
        (b'{"a": ' + b"[" * 64 + b"]" * 64 + b"}", "invalid_json", "nested more than 64"),
        (b'{"text": "hi", "client_id": NaN}', "invalid_json", "NaN is not a JSON number"),
        (b'{"text": "hi", "client_id": 1e400}', "invalid_json", "too large"),
        (b'\xef\xbb\xbf{"text": "hi", "client_id": "1"}', "invalid_json", "byte order mark"),
        ('{"text": "hi", "client_id": "1"}'.encode("utf-16"), "invalid_json", "not UTF-8"),
        ('{"text": "hi", "client_id": "1"}'.encode("utf-16-le"), "invalid_json", "not valid JSON"),
    ],
    ids=[
        "broken",
        "empty",
        "not-utf8",
        "array",
        "string",
        "null",
        "nested-too-deep",
        "depth-65",
        "nan",
        "1e400",
        "utf8-bom",
        "utf16-bom",
        "utf16-no-bom",
    ],
)
def test_a_signed_body_that_is_not_a_json_object_is_400(client, integration, body, error, phrase):
    assert_refused(post_signed_raw(client, integration, body), 400, error, phrase)
    assert not InboundEvent.objects.exists()


@pytest.mark.parametrize(
    "payload, phrase",
    [
        ({"client_id": "1"}, "text is required"),
        ({"text": "   ", "client_id": "1"}, "text is required"),
        ({"text": 12, "client_id": "1"}, "text is required"),
        ({"text": "Hi"}, "client_id is required"),
        ({"text": "Hi", "client_id": ""}, "client_id is required"),
        ({"text": "Hi", "client_id": {"id": 1}}, "client_id must be"),
        ({"text": "Hi", "client_id": True}, "client_id must be"),
        ({"text": "Hi", "client_id": "1", "transport": ["whatsapp"]}, "transport must be"),
        ({"text": "Hi", "client_id": "1", "dialog_id": "7"}, "dialog_id must be a number"),
        ({"text": "Hi", "client_id": "1", "message_id": "m" * 201}, "message_id must be"),
        ({"text": "x" * 20_001, "client_id": "1"}, "the limit is 20000"),
        ({"hook_type": 5, "text": "Hi", "client_id": "1"}, "hook_type must be a string"),
    ],
)
def test_a_message_agentbot_cannot_use_is_400_naming_the_field(client, integration, payload, phrase):
    assert_refused(post_webhook(client, integration, payload), 400, "invalid_payload", phrase)
    assert not InboundEvent.objects.exists()


@pytest.mark.parametrize(
    "payload, phrase",
    [
        ({"hook_type": "close_dialog"}, "request_id is required"),
        ({"hook_type": "close_request", "request_id": None, "dialog_id": 1}, "request_id is required"),
        ({"hook_type": "close_dialog", "request_id": "12345"}, "request_id must be a number"),
        ({"hook_type": "dialog_transferred", "request_id": 1.5}, "request_id must be a number"),
        ({"hook_type": "close_dialog", "request_id": True}, "request_id must be a number"),
        ({"hook_type": "dialog_transferred", "request_id": 1, "dialog_id": "67890"}, "dialog_id must be a number"),
    ],
)
def test_an_invalid_status_event_is_400_naming_the_field(client, integration, payload, phrase):
    assert_refused(post_webhook(client, integration, payload), 400, "invalid_payload", phrase)
    assert not InboundEvent.objects.exists()


@pytest.mark.parametrize(
    "raw, field",
    [
        ('{"text": "a\\u0000b", "client_id": "1"}', "text"),
        ('{"text": "a\\ud800b", "client_id": "1"}', "text"),
        ('{"text": "Hi", "client_id": "a\\u0000"}', "client_id"),
        ('{"text": "Hi", "client_id": "\\udfff"}', "client_id"),
        ('{"text": "Hi", "client_id": "1", "transport": "wa\\u0000"}', "transport"),
        ('{"text": "Hi", "client_id": "1", "message_id": "m\\ud800"}', "message_id"),
        ('{"hook_type": "close_dialog", "request_id": 1, "client_id": "\\u0000"}', "client_id"),
    ],
)
def test_text_postgresql_cannot_store_is_400_naming_the_field(client, integration, raw, field):
    assert_refused(post_signed_raw(client, integration, raw.encode()), 400, "invalid_payload", field)
    assert not InboundEvent.objects.exists()


@pytest.mark.parametrize(
    "raw, field",
    [
        ('{"text": "Hi", "client_id": 9007199254740993}', "client_id"),
        ('{"text": "Hi", "client_id": "1", "dialog_id": -9007199254740993}', "dialog_id"),
        ('{"hook_type": "close_dialog", "request_id": 100000000000000000000000}', "request_id"),
    ],
)
def test_numbers_javascript_cannot_hold_exactly_are_400(client, integration, raw, field):
    # They would be stored, then fail when the reply (which carries them back) is published.
    assert_refused(post_signed_raw(client, integration, raw.encode()), 400, "invalid_payload", field)
    assert not InboundEvent.objects.exists()


def test_a_body_over_one_megabyte_is_413_even_when_signed(client, integration):
    body = json.dumps({"text": "x" * (1024 * 1024), "client_id": "1"}).encode()

    response = post_signed_raw(client, integration, body)

    assert_refused(response, 413, "too_large", "1024 KB")
    assert not InboundEvent.objects.exists()


def test_a_body_just_under_the_limit_reaches_the_parser(client, integration):
    # Big but allowed: the parser's own text limit answers, not the size check.
    body = json.dumps({"text": "x" * (1024 * 1024 - 100), "client_id": "1"}).encode()
    assert_refused(post_signed_raw(client, integration, body), 400, "invalid_payload", "the limit is 20000")
