"""The webhook channel's (seed 003) scopes and JSON Web Encryption with real parts: PostgreSQL,
Redis and a Celery worker answering v2 requests (synchronous with polling, the default), tokens
encrypted by npm `jose` as a client would."""

import json
import time

import jsonschema
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from domain.models import Conversation, Lead
from inbound import integrations
from inbound.models import KnowledgeEntry
from subscriptions.event_types import CATALOGUE
from tests.conftest import client_for
from tests.inbound.test_chat2desk_e2e import FAST_SWEEP, wait_until
from tests.support.node import jose_encrypt, seed_verify
from tests.support.receiver import Receiver
from tests.support.webhook_channel import post_hook, token, v2_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HOURS = "What are your opening hours?"


def ask(instance, payload: dict, bearer: str):
    """POST to the instance; a pollId answer is polled until the worker is done."""
    response = Client().post(
        instance.webhook_path, json.dumps(payload), content_type="application/json", headers={"Authorization": f"bearer {bearer}"}
    )
    if response.status_code != 200 or response.json().get("status") != "InProgress":
        return response
    poll = f"/chatbot/hooks/{instance.site_id}/poll/{response.json()['pollId']}"

    def done():
        answer = Client().post(poll, headers={"Authorization": f"bearer {bearer}"})
        return answer if answer.json().get("status") == "Completed" else None

    return wait_until(done, what="poll completed")


def anonymous(text: str) -> dict:
    return {"message": {"type": "text", "val": text}}


# --- scopes ----------------------------------------------------------------------------------------
def test_anonymous_users_get_an_identity_stable_for_their_token_and_unknown_users_are_refused_without_auto_register(
    site, knowledge, workers
):
    api = client_for(site)
    created = api.post("/api/v1/integrations", {"connector_type": "webhook", "name": "Kiosk"}, format="json").json()
    assert (created["allow_anonymous"], created["auto_register"]) == (False, True), "the defaults"
    instance = integrations.Integration.objects.get(pk=created["id"])
    workers.start(**FAST_SWEEP)

    refused = ask(instance, anonymous(HOURS), token(instance))
    assert refused.status_code == 400 and "from.id is required" in refused.json()["message"]

    changed = api.patch(f"/api/v1/integrations/{instance.id}", {"allow_anonymous": True}, format="json")
    assert changed.status_code == 200 and changed.json()["allow_anonymous"] is True
    instance.refresh_from_db()
    session_token = token(instance)
    first = ask(instance, anonymous(HOURS), session_token)
    second = ask(instance, anonymous("Are you open today?"), session_token)
    other = ask(instance, anonymous(HOURS), token(instance, jti="another-session"))

    assert [r.status_code for r in (first, second, other)] == [200, 200, 200]
    user = first.json()["to"]["id"]
    assert user.startswith("anonymous-") and second.json()["to"]["id"] == user
    assert first.json()["sessionId"] == second.json()["sessionId"], "one session for one token"
    assert other.json()["to"]["id"] not in (user, "") and other.json()["sessionId"] != first.json()["sessionId"]
    assert [m["val"] for m in first.json()["data"]] == [knowledge.answer]
    conversation = Conversation.objects.get(pk=first.json()["sessionId"])
    assert conversation.external_id == user and conversation.messages.count() == 4

    # Auto-registration off: a user the site has never seen is refused, a known one (the anonymous
    # user above, sending its id from now on) goes on.
    assert api.patch(f"/api/v1/integrations/{instance.id}", {"auto_register": False}, format="json").status_code == 200
    instance.refresh_from_db()
    stranger = ask(instance, v2_message("never-seen", HOURS), token(instance))
    assert stranger.status_code == 401
    assert stranger.json()["message"].startswith("Invalid access token") and "auto_register" in stranger.json()["message"]
    known = ask(instance, v2_message(user, HOURS), token(instance))
    assert known.status_code == 200 and known.json()["sessionId"] == first.json()["sessionId"]
    assert not Conversation.objects.filter(external_id="never-seen").exists()


def test_admin_shows_and_saves_both_scopes_and_the_jwe_public_key(admin_client, site):
    instance = integrations.integration_create(site=site, connector_type="webhook", name="IVR")
    change = f"/admin/inbound/integration/{instance.pk}/change/"

    page = admin_client.get(change).content.decode()

    assert "Allow anonymous users to chat" in page and "Auto register new users" in page
    assert "JWE public key" in page and instance.jwe_public_key.splitlines()[1] in page
    assert instance.jwe_private_key.splitlines()[1] not in page, "the private key is never shown"
    in_portuguese = admin_client.get(change, HTTP_ACCEPT_LANGUAGE="pt-br").content.decode()
    assert "Permitir que usuários anônimos conversem" in in_portuguese and "Chave pública JWE" in in_portuguese
    form = {
        "name": "IVR",
        "active": "on",
        "api_version": "v2",
        "mode": "sync",
        "jwt_algorithm": "HS256",
        "polling": "on",
        "allow_anonymous": "on",
    }
    assert admin_client.post(change, form).status_code == 302
    instance.refresh_from_db()
    assert (instance.allow_anonymous, instance.auto_register) == (True, False)


# --- JSON Web Encryption ---------------------------------------------------------------------------
def test_a_jwt_encrypted_by_npm_jose_to_the_instances_public_key_is_decrypted_then_verified(site, knowledge, workers):
    api = client_for(site)
    created = api.post("/api/v1/integrations", {"connector_type": "webhook", "name": "Secure"}, format="json").json()
    instance = integrations.Integration.objects.get(pk=created["id"])
    public_key = api.get(f"/api/v1/integrations/{instance.id}").json()["jwe_public_key"]
    assert public_key.startswith("-----BEGIN PUBLIC KEY-----") and public_key == instance.jwe_public_key
    assert "PRIVATE" not in json.dumps(api.get("/api/v1/integrations").json())
    workers.start(**FAST_SWEEP)
    signed = token(instance, userIdentity="caller-1")

    for alg, enc in (("RSA-OAEP-256", "A256GCM"), ("RSA-OAEP", "A128GCM")):
        encrypted = jose_encrypt(signed, public_key, alg=alg, enc=enc)
        assert encrypted.count(".") == 4
        answer = ask(instance, v2_message("caller-1", HOURS), encrypted)
        assert answer.status_code == 200, answer.content
        assert [m["val"] for m in answer.json()["data"]] == [knowledge.answer]

    encrypted = jose_encrypt(signed, public_key)
    parts = encrypted.split(".")
    parts[3] = ("B" if parts[3][0] != "B" else "C") + parts[3][1:]  # one character of the ciphertext
    tampered = ask(instance, v2_message("caller-1", HOURS), ".".join(parts))
    assert tampered.status_code == 401 and "cannot be decrypted" in tampered.json()["message"]

    weak = ask(instance, v2_message("caller-1", HOURS), jose_encrypt(signed, public_key, enc="A128CBC-HS256"))
    assert weak.status_code == 401 and "A128GCM or A256GCM" in weak.json()["message"]

    # Inside, the JWT is verified exactly as a plain one: another secret's signature, another user.
    forged = jose_encrypt(token(instance, key="not-the-secret-of-this-instance-at-all"), public_key)
    assert "signature does not match" in ask(instance, v2_message("caller-1", HOURS), forged).json()["message"]
    pinned = ask(instance, v2_message("caller-2", HOURS), jose_encrypt(signed, public_key))
    assert pinned.status_code == 401 and pinned.json()["message"].startswith("Invalid access token")


# --- mergeIdentity ---------------------------------------------------------------------------------
def test_merge_identity_continues_in_the_users_other_open_conversation_and_loses_nothing(
    site, knowledge, receiver, webhook_factory, workers
):
    webhook_factory(site=site, url=receiver.url, events=["conversation.merged"])
    first = integrations.integration_create(site=site, connector_type="webhook", name="Web")
    second = integrations.integration_create(site=site, connector_type="webhook", name="App")
    workers.start(**FAST_SWEEP)
    on_web = ask(first, v2_message("caller-9", HOURS), token(first)).json()
    on_app = ask(second, v2_message("caller-9", HOURS), token(second)).json()
    assert on_web["sessionId"] != on_app["sessionId"], "without mergeIdentity each instance has its own"

    merged = ask(second, v2_message("caller-9", "Are you open on Sunday?", mergeIdentity="true"), token(second))

    assert merged.status_code == 200, merged.content
    assert merged.json()["sessionId"] == on_web["sessionId"], "the conversation continues in the other open one"
    kept = Conversation.objects.get(pk=on_web["sessionId"])
    closed = Conversation.objects.get(pk=on_app["sessionId"])
    assert (kept.status, kept.integration_id) == ("open", second.id) and closed.status == "closed"
    assert closed.messages.count() == 0 and kept.messages.count() == 6, "every message is in the kept conversation"
    assert [m.body for m in kept.messages.order_by("created_at")][:2] == [HOURS, knowledge.answer]
    (delivery,) = receiver.wait_for(1)
    data = json.loads(delivery.body)["data"]
    assert (data["conversation_id"], data["merged_conversation_id"], data["moved_message_count"]) == (kept.id, closed.id, 2)
    jsonschema.validate(data, CATALOGUE["conversation.merged"].schema)
    # The user's next message on the app (no mergeIdentity) stays in the kept conversation.
    assert ask(second, v2_message("caller-9", HOURS), token(second)).json()["sessionId"] == kept.id
    time.sleep(1)
    assert len(receiver.received) == 1, "one conversation.merged"


# --- uploads ---------------------------------------------------------------------------------------
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.4\n" + b"terms and conditions " * 3000


@pytest.fixture
def upload_storage(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "agentbot_uploads": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    settings.AGENTBOT_PUBLIC_URL = "http://testserver"
    return tmp_path


def attached(payload: dict, attachments: list[dict]) -> dict:
    return {**payload, "message": {**payload["message"], "attachments": attachments}}


def bearer(instance) -> dict:
    return {"Authorization": f"bearer {token(instance)}"}


def upload_single(instance, name: str, content: bytes, content_type: str, **fields):
    sent = SimpleUploadedFile(name, content, content_type=content_type)
    return Client().post(f"{instance.webhook_path}/uploads", {"file": sent, **fields}, headers=bearer(instance))


def upload_chunked(instance, name: str, content: bytes, part_size: int) -> dict:
    base = f"{instance.webhook_path}/uploads"
    started = Client().post(f"{base}/init", {"fileName": name}, content_type="application/json", headers=bearer(instance))
    assert started.status_code == 201, started.content
    file_id = started.json()["fileId"]
    parts = [content[i : i + part_size] for i in range(0, len(content), part_size)]
    for number, part in enumerate(parts, 1):
        sent = Client().put(
            f"{base}/{file_id}/parts/{number}", part, content_type="application/octet-stream", headers=bearer(instance)
        )
        assert sent.status_code == 200, sent.content
    finished = Client().post(
        f"{base}/{file_id}/finish", {"totalParts": len(parts)}, content_type="application/json", headers=bearer(instance)
    )
    assert finished.status_code == 200, finished.content
    return finished.json()


def test_files_uploaded_whole_and_in_parts_are_attachments_subscribers_fetch_by_signed_link(
    site, knowledge, receiver, webhook_factory, workers, upload_storage, settings
):
    webhook_factory(site=site, url=receiver.url, events=["message.created"])
    instance = integrations.integration_create(site=site, connector_type="webhook", name="Web", polling=False)
    other = integrations.integration_create(site=site, connector_type="webhook", name="App", polling=False)
    workers.start(**FAST_SWEEP)

    single = upload_single(instance, "logo.png", PNG, "image/png", fileType="image")
    assert single.status_code == 201, single.content
    assert (single.json()["fileName"], single.json()["fileType"], single.json()["size"]) == ("logo.png", "image", len(PNG))
    chunked = upload_chunked(instance, "terms.pdf", PDF, part_size=20_000)
    assert (chunked["fileType"], chunked["size"], chunked["status"]) == ("attachment", len(PDF), "complete")

    # Limits, each with a 4xx that says what to do.
    html = upload_single(instance, "page.html", b"<script>alert(1)</script>", "text/html")
    assert html.status_code == 415 and "image/png" in html.json()["message"]
    settings.AGENTBOT_UPLOAD_MAX_BYTES = 1000
    assert upload_single(instance, "big.png", PNG, "image/png").status_code == 413
    settings.AGENTBOT_UPLOAD_MAX_BYTES = 10 * 1024 * 1024
    started = (
        Client()
        .post(
            f"{instance.webhook_path}/uploads/init",
            {"fileName": "x.pdf"},
            content_type="application/json",
            headers=bearer(instance),
        )
        .json()
    )
    gap = Client().post(
        f"{instance.webhook_path}/uploads/{started['fileId']}/finish",
        {"totalParts": 2},
        content_type="application/json",
        headers=bearer(instance),
    )
    assert gap.status_code == 409 and "parts 1, 2 have not arrived" in gap.json()["message"]
    foreign = upload_single(other, "other.png", PNG, "image/png").json()["fileId"]
    refused = post_hook(
        Client(),
        instance,
        attached(v2_message("caller-5", "see"), [{"fileName": "o.png", "fileType": "image", "fileId": foreign}]),
    )
    assert refused.status_code == 400 and "not a file uploaded to this channel instance" in refused.json()["message"]
    assert Client().post(f"{instance.webhook_path}/uploads", {}, headers={"Authorization": "bearer nope"}).status_code == 401

    attachments = [
        {"fileName": "logo.png", "fileType": "image", "fileId": single.json()["fileId"]},
        {"fileName": "terms.pdf", "fileType": "attachment", "fileId": chunked["fileId"]},
    ]
    answered = post_hook(Client(), instance, attached(v2_message("caller-5", HOURS), attachments))

    assert answered.status_code == 200, answered.content
    visitor = Conversation.objects.get(pk=answered.json()["sessionId"]).messages.get(sender_type="visitor")
    assert [a["fileName"] for a in visitor.metadata["attachments"]] == ["logo.png", "terms.pdf"]
    received = wait_until(
        lambda: [d for d in (json.loads(r.body)["data"] for r in receiver.received) if d.get("attachments")], what="event"
    )
    (data,) = received
    assert [(a["name"], a["type"], a["content_type"]) for a in data["attachments"]] == [
        ("logo.png", "image", "image/png"),
        ("terms.pdf", "attachment", "application/pdf"),
    ]
    jsonschema.validate(data, CATALOGUE["message.created"].schema)
    for attachment, content in zip(data["attachments"], (PNG, PDF), strict=True):
        fetched = Client().get(attachment["url"].removeprefix("http://testserver"))
        assert fetched.status_code == 200 and b"".join(fetched.streaming_content) == content
        assert fetched["Content-Disposition"].startswith("attachment") and fetched["X-Content-Type-Options"] == "nosniff"
    # The link is signed and expires.
    url = data["attachments"][0]["url"].removeprefix("http://testserver")
    assert Client().get(url[:-2] + ("AA" if not url.endswith("AA") else "BB")).status_code == 403
    settings.AGENTBOT_UPLOAD_URL_TTL = 0
    time.sleep(1.1)
    assert Client().get(url).status_code == 403


# --- digital forms -------------------------------------------------------------------------------
CONTACT = "Can someone contact me?"


@pytest.fixture
def post_url():
    fake = Receiver()
    yield fake
    fake.close()


def form_of(data: list[dict]) -> dict:
    (form,) = [item["val"] for item in data if item["type"] == "template"]
    return form


def test_the_lead_form_is_asked_answered_wrong_then_right_and_the_lead_fans_out_once(
    site, receiver, post_url, webhook_factory, workers
):
    KnowledgeEntry.objects.create(
        site=site, question=CONTACT, answer="[[lead_form]] Leave your details and we will call you.", keywords="contact me"
    )
    receiver.responder = lambda n: (200, b'{"status":"success"}')  # the Leads webhook's success, a 2xx for Chatzuri
    leads = webhook_factory(site=site, url=receiver.url, events=["lead.submit"], format="leads")
    chatzuri = webhook_factory(site=site, url=receiver.url, events=["lead.submit"], format="chatzuri")
    sync = integrations.integration_create(site=site, connector_type="webhook", name="Web", polling=False)
    api = client_for(site)
    created = api.post(
        "/api/v1/integrations",
        {"connector_type": "webhook", "name": "Async", "mode": "async", "post_url": post_url.url},
        format="json",
    )
    async_instance = integrations.Integration.objects.get(pk=created.json()["id"])
    workers.start(**FAST_SWEEP)

    asked = post_hook(Client(), sync, v2_message("caller-7", CONTACT)).json()

    assert [item["type"] for item in asked["data"]] == ["text", "template"]
    assert asked["data"][0]["val"] == "Leave your details and we will call you."
    form = form_of(asked["data"])
    assert (form["template_type"], form["formId"], form["submit"]["messageType"]) == ("form", "lead_form", "formData")
    assert [f["key"] for f in form["fields"]] == ["name", "email", "phone", "consent"]
    assert form["consentText"] in [f["label"] for f in form["fields"]] and site.name in form["consentText"]

    wrong = {"formId": "lead_form", "name": "", "email": "not-an-email", "consent": False}
    refused = post_hook(Client(), sync, v2_message("caller-7", wrong, kind="formData")).json()
    again = form_of(refused["data"])
    assert set(again["errors"]) == {"name", "email", "consent"} and again["values"] == {"name": "", "email": "not-an-email"}
    assert not Lead.objects.exists()

    right = {"formId": "lead_form", "name": "David Garcia", "email": "david@example.com", "phone": "+1234567890", "consent": True}
    thanked = post_hook(Client(), sync, v2_message("caller-7", right, kind="formData")).json()
    assert [item["type"] for item in thanked["data"]] == ["text"] and "David" in thanked["data"][0]["val"]
    assert (thanked["completedTaskId"], thanked["completedTaskName"]) == ("lead_form", "Lead form")
    (lead,) = Lead.objects.all()
    assert (lead.first_name, lead.last_name, lead.email, lead.conversation_id) == (
        "David",
        "Garcia",
        "david@example.com",
        thanked["sessionId"],
    )
    requests = receiver.wait_for(2)
    leads_requests = [r for r in requests if "Email" in json.loads(r.body)]
    chatzuri_requests = [r for r in requests if json.loads(r.body).get("eventType") == "lead.submit"]
    assert len(leads_requests) == len(chatzuri_requests) == 1
    assert seed_verify("leads", leads.secret, leads_requests) == [True]
    assert seed_verify("chatzuri", chatzuri.secret, chatzuri_requests) == [True]
    assert json.loads(chatzuri_requests[0].body)["payload"]["customerEmail"] == "david@example.com"

    # An asynchronous instance posts the form to its POST_URL.
    assert post_hook(Client(), async_instance, v2_message("caller-8", CONTACT)).status_code == 202
    posted = wait_until(
        lambda: [b for b in (json.loads(r.body) for r in post_url.received) if "data" in b] or None, what="form posted"
    )
    assert form_of(posted[0]["data"])["formId"] == "lead_form"
    time.sleep(1)
    assert len(receiver.received) == 2, "lead.submit fans out once"
