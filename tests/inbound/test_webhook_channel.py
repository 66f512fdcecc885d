"""The webhook channel (seed 003) in synchronous mode: instances and their URLs, v1 and v2 round
trips, the v2 session events, tags, and the errors a caller can act on. The answers are computed
in the request, so no worker is needed; polling and async mode are in test_webhook_channel_e2e."""

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deliveries.models import Event
from domain.models import Conversation, Message
from inbound import integrations
from inbound.models import InboundEvent, Integration
from tests.support.webhook_channel import post_hook, rsa_key_pair, token, v1_message, v2_message

pytestmark = pytest.mark.django_db

HOURS = "What are your opening hours?"


def instance_of(site, **options) -> Integration:
    return integrations.integration_create(site=site, connector_type="webhook", name="IVR", polling=False, **options)


@pytest.fixture
def v2(site):
    return instance_of(site)


@pytest.fixture
def v1(site):
    return instance_of(site, api_version="v1")


def events_of(event_type: str) -> list[dict]:
    return [e.data for e in Event.objects.filter(type=event_type).order_by("created_at")]


# --- round trips ---------------------------------------------------------------------------------
def test_a_v2_message_is_answered_in_the_response_as_an_array(v2, knowledge, site):
    response = post_hook(Client(), v2, v2_message("caller-1", HOURS))

    assert response.status_code == 200, response.content
    body = response.json()
    conversation = Conversation.objects.get(integration=v2)
    reply = Message.objects.get(conversation=conversation, sender_type="ai")
    assert body == {
        "data": [{"type": "text", "val": knowledge.answer, "createdOn": body["data"][0]["createdOn"], "messageId": reply.id}],
        "from": {"id": site.id},
        "to": {"id": "caller-1"},
        "sessionId": conversation.id,
        "endOfTask": True,
        "endReason": "Fulfilled",
        "completedTaskId": "answer",
        "completedTaskName": "Answer the visitor",
        "createdOn": body["createdOn"],
        "_v": "v2",
    }
    assert body["createdOn"] >= body["data"][0]["createdOn"], "the end of the turn comes after its message"
    assert (conversation.channel, conversation.external_id) == ("other", "caller-1")
    # Outbound subscribers see both messages, like any other conversation's.
    assert [(d["sender_type"], d["body"]) for d in events_of("message.created")] == [("visitor", HOURS), ("ai", knowledge.answer)]
    event = InboundEvent.objects.get(integration=v2)
    assert event.status == "processed" and event.outcome.endswith("returned to the caller")


def test_a_v1_message_is_answered_with_a_text_array(v1, knowledge, site):
    payload = v1_message(
        "caller-1",
        HOURS,
        **{"from": {"id": "caller-1", "userInfo": {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"}}},
    )
    response = post_hook(Client(), v1, payload)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["text"] == [knowledge.answer] and len(body["messageIds"]) == 1
    assert (body["endOfTask"], body["endReason"], body["to"]) == (True, "Fulfilled", {"id": "caller-1"})
    assert "_v" not in body and "data" not in body
    conversation = Conversation.objects.get(pk=body["sessionId"])
    assert (conversation.visitor_name, conversation.visitor_email) == ("Ada Lovelace", "ada@example.com")


def test_a_question_without_an_answer_is_handed_to_a_human_with_a_defined_response(v2, knowledge):
    response = post_hook(Client(), v2, v2_message("caller-1", "Can I pay with bitcoin?"))

    assert response.status_code == 200
    body = response.json()
    assert body["data"] == [] and body["endReason"] == "AgentTransfer"
    assert (body["completedTaskId"], body["completedTaskName"]) == ("handoff", "Hand the conversation to a person")
    assert body["handoff"] == {"reason": "The knowledge base has no answer to the visitor's question."}
    # The next message waits for the human: stored, not answered.
    again = post_hook(Client(), v2, v2_message("caller-1", HOURS)).json()
    assert again["data"] == [] and again["endReason"] == "AgentTransfer" and again["sessionId"] == body["sessionId"]
    assert len(events_of("conversation.needs_human")) == 1


def test_the_same_user_keeps_one_conversation_and_session_new_starts_another(v2, knowledge):
    first = post_hook(Client(), v2, v2_message("caller-1", HOURS)).json()
    second = post_hook(Client(), v2, v2_message("caller-1", HOURS)).json()
    third = post_hook(Client(), v2, v2_message("caller-1", HOURS, session={"new": True})).json()

    assert first["sessionId"] == second["sessionId"] != third["sessionId"]
    assert Conversation.objects.get(pk=first["sessionId"]).status == "closed"
    assert [d["conversation_id"] for d in events_of("conversation.closed")] == [first["sessionId"]]


def test_template_and_form_data_values_reach_the_agent_as_text_and_are_kept(v2, knowledge):
    form = {"text": HOURS, "formId": "f-1", "fields": {"when": "today"}}
    response = post_hook(Client(), v2, v2_message("caller-1", form, kind="formData"))

    assert response.json()["endReason"] == "Fulfilled"
    visitor = Message.objects.get(sender_type="visitor")
    assert visitor.body == HOURS and visitor.metadata == {"formData": form}


def test_tags_are_kept_on_the_user_the_session_and_the_message(v2, knowledge):
    tags = {
        "userLevelTags": [{"name": "tier", "value": "gold"}],
        "sessionLevelTags": [{"name": "queue", "value": "billing"}],
        "messageLevelTags": [{"name": "intent", "value": "hours"}],
    }
    post_hook(Client(), v2, v2_message("caller-1", HOURS, metaTags=tags, mergeIdentity="true", attachments=None))
    later = {"sessionLevelTags": [{"name": "priority", "value": 2}]}
    payload = v2_message("caller-1", HOURS, metaTags=later)
    payload["message"]["attachments"] = [{"url": "https://files.example.com/a.png"}]
    post_hook(Client(), v2, payload)

    conversation = Conversation.objects.get(integration=v2)
    assert conversation.context["userLevelTags"] == {"tier": "gold"}
    # Session tags accumulate over the session's messages.
    assert conversation.context["sessionLevelTags"] == {"queue": "billing", "priority": 2}
    first, second = Message.objects.filter(sender_type="visitor").order_by("created_at")
    assert first.metadata == {"tags": {"intent": "hours"}, "mergeIdentity": True}
    assert second.metadata == {"attachments": [{"url": "https://files.example.com/a.png"}]}


# --- v2 events -----------------------------------------------------------------------------------
def test_on_connect_opens_a_session_without_a_message_and_session_closure_closes_it(v2):
    connect = post_hook(Client(), v2, v2_message("caller-1", "ON_CONNECT", kind="event"))

    assert connect.status_code == 200
    body = connect.json()
    assert (body["data"], body["endReason"]) == ([], "Connected")
    conversation = Conversation.objects.get(pk=body["sessionId"])
    assert conversation.status == "open" and not conversation.messages.exists()
    assert [d["conversation_id"] for d in events_of("conversation.created")] == [conversation.id]
    # Connecting again continues the same session.
    assert post_hook(Client(), v2, v2_message("caller-1", "ON_CONNECT", kind="event")).json()["sessionId"] == conversation.id

    closure = post_hook(Client(), v2, v2_message("caller-1", "SESSION_CLOSURE", kind="event")).json()

    assert (closure["endReason"], closure["sessionId"]) == ("SessionClosed", conversation.id)
    conversation.refresh_from_db()
    assert conversation.status == "closed"
    assert [d["conversation_id"] for d in events_of("conversation.closed")] == [conversation.id]
    outcomes = list(InboundEvent.objects.filter(integration=v2).order_by("received_at").values_list("kind", "status", "outcome"))
    assert outcomes[0] == ("status", "processed", f"ON_CONNECT: session {conversation.id} opened")
    assert outcomes[-1] == ("status", "processed", f"SESSION_CLOSURE: session {conversation.id} closed")


def test_session_closure_without_an_open_session_changes_nothing(v2):
    body = post_hook(Client(), v2, v2_message("nobody", "SESSION_CLOSURE", kind="event")).json()
    assert (body["sessionId"], body["endReason"]) == (None, "SessionClosed")
    assert not Event.objects.filter(type="conversation.closed").exists()


# --- instances and their URLs --------------------------------------------------------------------
def test_the_first_instance_has_the_short_url_and_the_second_its_hook_instance_url(site, knowledge):
    first, second = instance_of(site), instance_of(site, api_version="v1")

    assert first.webhook_path == f"/chatbot/hooks/{site.id}"
    assert second.webhook_path == f"/chatbot/hooks/{site.id}/hookInstance/{second.id}"
    assert post_hook(Client(), second, v1_message("u", HOURS)).json()["text"] == [knowledge.answer]
    assert InboundEvent.objects.get().integration == second
    # The first instance answers at its instance URL as well; the instances keep separate users.
    url = f"/chatbot/hooks/{site.id}/hookInstance/{first.id}"
    assert post_hook(Client(), first, v2_message("u", HOURS), url=url).status_code == 200
    assert Conversation.objects.filter(external_id="u").count() == 2


def test_a_token_of_one_instance_does_not_open_another(site):
    first, second = instance_of(site), instance_of(site)

    response = post_hook(Client(), second, v2_message("u", "hi"), bearer=token(first))
    assert response.status_code == 401


@pytest.mark.parametrize(
    "path, phrase",
    [
        ("/chatbot/hooks/site_nope", "has no webhook channel instance"),
        ("/chatbot/hooks/{site}/hookInstance/intg_nope", "intg_nope"),
    ],
)
def test_an_unknown_bot_or_instance_is_404(v2, site, path, phrase):
    response = post_hook(Client(), v2, v2_message("u", "hi"), url=path.format(site=site.id))
    assert response.status_code == 404 and phrase in response.json()["message"]


def test_an_inactive_instance_is_403(v2):
    integrations.integration_update(integration=v2, active=False)
    response = post_hook(Client(), v2, v2_message("u", "hi"))
    assert response.status_code == 403 and response.json()["error"] == "channel_inactive"


def test_other_methods_are_405(v2):
    response = Client().get(v2.webhook_path)
    assert response.status_code == 405 and response["Allow"] == "POST"


@pytest.mark.parametrize(
    "payload, phrase",
    [
        ({"from": {"id": "u"}}, "message is required"),
        ({"message": {"type": "text", "val": "hi"}}, "from.id is required"),
        ({"message": {"type": "text", "val": "hi"}, "from": {"id": ""}}, "from.id is required"),
        ({"message": {"type": "text"}, "from": {"id": "u"}}, "message.val is required"),
        ({"message": {"type": "text", "val": 5}, "from": {"id": "u"}}, "message.val must be a string"),
        ({"message": {"type": "voice", "val": "hi"}, "from": {"id": "u"}}, "message.type must be one of"),
        (
            {"message": {"type": "event", "val": "ON_HOLD"}, "from": {"id": "u"}},
            "message.val must be ON_CONNECT or SESSION_CLOSURE",
        ),
        ({"message": {"type": "template", "val": "x"}, "from": {"id": "u"}}, "message.val must be a non-empty object"),
        ({"message": {"type": "text", "val": "hi"}, "from": {"id": "u"}, "session": {"new": "yes"}}, "session.new"),
        ({"message": {"type": "text", "val": "a\x00b"}, "from": {"id": "u"}}, "message.val must not contain NUL"),
        (
            {"message": {"type": "text", "val": "hi"}, "from": {"id": "u", "userInfo": {"email": "nope"}}},
            "from.userInfo.email is not an email address",
        ),
        (
            {"message": {"type": "text", "val": "hi"}, "from": {"id": "u"}, "metaTags": {"userLevelTags": [{"value": 1}]}},
            "metaTags.userLevelTags[0].name is required",
        ),
        (
            {"message": {"type": "text", "val": "hi", "attachments": [{"size": 1}]}, "from": {"id": "u"}},
            "message.attachments[0] must be an object with a url",
        ),
        ({"message": {"type": "text", "val": "hi"}, "from": {"id": "u"}, "mergeIdentity": "maybe"}, "mergeIdentity"),
    ],
)
def test_a_bad_v2_payload_is_400_naming_the_field(v2, payload, phrase):
    response = post_hook(Client(), v2, payload)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_payload" and phrase in response.json()["message"]
    assert not InboundEvent.objects.exists()


def test_a_bad_v1_payload_is_400_naming_the_field(v1):
    response = post_hook(Client(), v1, {"message": {"type": "text", "val": "hi"}, "from": {"id": "u"}})
    assert response.status_code == 400 and "message.text is required" in response.json()["message"]


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"message": NaN}'])
def test_a_body_that_is_not_a_json_object_is_400(v2, body):

    response = Client().generic(
        "POST", v2.webhook_path, body, content_type="application/json", headers={"Authorization": f"bearer {token(v2)}"}
    )
    assert response.status_code == 400 and response.json()["error"] in ("invalid_json", "invalid_payload")


# --- instance settings ---------------------------------------------------------------------------
def test_an_rs_instance_needs_a_valid_public_key(site):

    with pytest.raises(ValidationError, match="public_key"):
        instance_of(site, jwt_algorithm="RS256")
    with pytest.raises(ValidationError, match="not a PEM public key"):
        instance_of(site, jwt_algorithm="RS256", public_key="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")
    assert instance_of(site, jwt_algorithm="RS512", public_key=rsa_key_pair()[1]).public_key.startswith(
        "-----BEGIN PUBLIC KEY-----"
    )


def test_a_body_over_one_megabyte_is_413(v2):

    body = b'{"message": {"type": "text", "val": "' + b"x" * (1024 * 1024) + b'"}, "from": {"id": "u"}}'
    response = Client().generic(
        "POST", v2.webhook_path, body, content_type="application/json", headers={"Authorization": f"bearer {token(v2)}"}
    )
    assert response.status_code == 413 and response.json()["error"] == "too_large"


# --- whatever a caller sends, never a 500 --------------------------------------------------------
FIELD_NAMES = [
    "message",
    "from",
    "id",
    "type",
    "val",
    "text",
    "session",
    "new",
    "metaTags",
    "userLevelTags",
    "sessionLevelTags",
    "messageLevelTags",
    "name",
    "value",
    "attachments",
    "url",
    "fileId",
    "userInfo",
    "email",
    "firstName",
    "lastName",
    "mergeIdentity",
    "InteractiveLanguage",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["text", "event", "template", "formData", "ON_CONNECT", "SESSION_CLOSURE", "true", "a@b.co", "\x00"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.parametrize("version", ["v1", "v2"])
@given(payload=st.dictionaries(st.sampled_from(FIELD_NAMES), JSON, max_size=5))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_json_object_gets_an_answer_and_never_a_500(site, knowledge, version, payload):
    instance = Integration.objects.filter(site=site, settings__api_version=version).first() or instance_of(
        site, api_version=version
    )
    response = post_hook(Client(), instance, payload, url=f"/chatbot/hooks/{site.id}/hookInstance/{instance.id}")
    assert response.status_code in (200, 400), response.content
    assert "error" in response.json() if response.status_code == 400 else True


def test_an_agent_that_cannot_answer_within_the_budget_is_a_504_and_the_message_is_kept(v2, settings, monkeypatch, closed_port):
    from inbound.connectors.webhook_channel import services as webhook_services

    monkeypatch.setattr(webhook_services, "SYNC_BUDGET", 0.5)
    settings.AGENTBOT_LLM_BASE_URL = f"http://127.0.0.1:{closed_port}/v1"  # nothing listens: the model is unavailable

    response = post_hook(Client(), v2, v2_message("caller-1", HOURS))

    assert response.status_code == 504
    body = response.json()
    assert body["error"] == "agent_timeout" and "within 0.5 s" in body["message"]
    event = InboundEvent.objects.get(pk=body["requestId"])
    assert event.status == "accepted" and event.attempts == 1  # the sweep tries again later


def test_a_slow_model_is_not_waited_for_past_the_sync_budget(v2, settings, monkeypatch):
    import time

    from inbound.connectors.webhook_channel import services as webhook_services
    from tests.support.fake_chat2desk import FakeCompletions

    model_delay = 6.0
    slow = FakeCompletions(reply=lambda messages: time.sleep(model_delay) or "Too late.")
    try:
        monkeypatch.setattr(webhook_services, "SYNC_BUDGET", 0.5)
        settings.AGENTBOT_LLM_BASE_URL = slow.url + "/v1"
        settings.AGENTBOT_LLM_TIMEOUT = 30

        started = time.monotonic()
        response = post_hook(Client(), v2, v2_message("caller-1", HOURS))
        waited = time.monotonic() - started
    finally:
        slow.close()

    assert response.status_code == 504 and response.json()["error"] == "agent_timeout"
    assert waited < model_delay - 2, f"the caller waited {waited:.1f} s for a model its 0.5 s budget had no room for"
    event = InboundEvent.objects.get(pk=response.json()["requestId"])
    assert event.status == "accepted" and event.attempts == 1  # the sweep asks the model again later
