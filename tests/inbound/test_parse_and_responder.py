"""Unit tests of the inbound pieces: Chat2Desk's payloads, the knowledge-base matcher, the language
model responder (against a local OpenAI-compatible server) and the chat2desk delivery format."""

import json
import socket
from datetime import datetime, timezone

import pytest

from inbound import chat2desk
from inbound.models import KnowledgeEntry
from inbound.responder import (
    HANDOFF,
    KnowledgeBaseResponder,
    LLMResponder,
    ResponderUnavailable,
    Turn,
    match,
    responder,
)
from deliveries import jsjson
from deliveries.formats import Envelope, Signing, get_format
from subscriptions.event_types import CHANNEL_REPLY, MESSAGE_CREATED, WEBHOOK_TEST
from tests.factories import SiteFactory
from tests.support.fake_chat2desk import FakeCompletions


# --- chat2desk.parse ----------------------------------------------------------------------------
SEED_MESSAGE = {"text": "Hello, I need help with my order", "client_id": "12345678", "channel_id": "987654", "transport": "whatsapp"}


def test_the_seeds_message_payload_is_a_message():
    assert chat2desk.parse(SEED_MESSAGE) == chat2desk.Parsed("message", SEED_MESSAGE)


def test_an_inbox_hook_keeps_its_ids_and_message_id_and_drops_the_rest():
    parsed = chat2desk.parse(
        {
            "hook_type": "inbox",
            "type": "from_client",
            "text": "Oi",
            "client_id": 42,
            "dialog_id": 7,
            "request_id": 9,
            "message_id": 555,
            "photo": None,
            "extra": {"a": 1},
        }
    )
    assert parsed.kind == "message" and parsed.external_id == "555"
    assert parsed.payload == {"text": "Oi", "client_id": 42, "dialog_id": 7, "request_id": 9}


@pytest.mark.parametrize(
    "transport, client, identity",
    [
        ("whatsapp", {"id": 1, "phone": "79161234567", "name": "Ada"}, {"source": {"from": "+79161234567"}, "visitor": {"name": "Ada", "phone": "+79161234567"}}),
        ("wa_business", {"phone": "", "client_phone": "+1 (234) 567-890"}, {"source": {"from": "+1234567890"}, "visitor": {"phone": "+1234567890"}}),
        ("whatsapp", {"phone": "[wa] 1234567890"}, {"source": {"from": "+1234567890"}, "visitor": {"phone": "+1234567890"}}),
        ("telegram", {"phone": "[tg] 807892", "name": "Peter", "username": "@peter"}, {"source": {"chatId": 807892, "username": "peter"}, "visitor": {"name": "Peter"}}),
        ("fb", {"phone": "[fb] fb_user_123"}, {"source": {"senderId": "fb_user_123"}}),
        ("viber", {"phone": "79161234567"}, {"visitor": {"phone": "+79161234567"}}),  # viber has no source fields
        ("telegram", {"phone": None, "name": ""}, {}),
    ],
)
def test_chat2desks_client_fills_the_channels_identifiers_and_the_visitor(transport, client, identity):
    parsed = chat2desk.parse({**SEED_MESSAGE, "transport": transport, "client": client})
    assert {k: parsed.payload[k] for k in ("source", "visitor") if k in parsed.payload} == identity


def test_a_chat2desk_client_that_is_not_an_object_is_refused_naming_it():
    with pytest.raises(chat2desk.PayloadError, match="client must be an object"):
        chat2desk.parse({**SEED_MESSAGE, "client": "Ada"})
    with pytest.raises(chat2desk.PayloadError, match="client.name must be a string"):
        chat2desk.parse({**SEED_MESSAGE, "client": {"name": "x" * 201}})


@pytest.mark.parametrize(
    "body, payload",
    [
        (
            {"hook_type": "close_dialog", "request_id": 12345, "dialog_id": 67890},
            {"action": "session_close", "request_id": 12345, "dialog_id": 67890},
        ),
        ({"hook_type": "close_request", "request_id": 12345}, {"action": "session_close", "request_id": 12345}),
        (
            {"hook_type": "dialog_transferred", "request_id": 1, "dialog_id": 2, "client_id": "c1"},
            {"action": "session_transfer_external", "request_id": 1, "dialog_id": 2, "client_id": "c1"},
        ),
    ],
)
def test_status_hooks_map_to_their_internal_action(body, payload):
    parsed = chat2desk.parse(body)
    assert parsed.kind == "status" and parsed.external_id == ""
    assert parsed.payload == {"hook_type": body["hook_type"], **payload}


@pytest.mark.parametrize(
    "body",
    [
        {"hook_type": "new_client", "client_id": 1},
        {"hook_type": "close_dialog_by_timeout"},
        {"hook_type": "inbox", "type": "to_client", "text": "Our reply", "client_id": "1"},
        {"type": "system", "text": "Operator joined", "client_id": "1"},
    ],
)
def test_what_agentbot_does_not_act_on_is_ignored_with_a_reason(body):
    parsed = chat2desk.parse(body)
    assert parsed.kind == "ignored" and parsed.payload == {}
    assert repr(body.get("type") if "type" in body else body["hook_type"]) in parsed.reason


@pytest.mark.parametrize(
    "body, message",
    [
        ({"client_id": "1"}, "text is required"),
        ({"text": "Hi"}, "client_id is required"),
        ({"text": "Hi", "client_id": 1.5}, "client_id must be"),
        ({"text": "Hi", "client_id": 2**53}, "client_id must be"),
        ({"text": "Hi", "client_id": "1", "request_id": "9"}, "request_id must be a number"),
        ({"text": "a\x00b", "client_id": "1"}, "text must not contain NUL"),
        ({"text": "Hi", "client_id": "\ud800"}, "client_id must not contain"),
        ({"hook_type": "close_dialog"}, "request_id is required"),
        ({"hook_type": "close_dialog", "request_id": "1"}, "request_id must be a number"),
        ({"hook_type": "close_dialog", "request_id": False}, "request_id must be a number"),
        ({"hook_type": "close_dialog", "request_id": 1, "dialog_id": 2.0}, "dialog_id must be a number"),
        ({"hook_type": ["inbox"]}, "hook_type must be a string"),
    ],
)
def test_payloads_agentbot_cannot_use_raise_an_error_naming_the_field(body, message):
    with pytest.raises(chat2desk.PayloadError) as caught:
        chat2desk.parse(body)
    assert str(caught.value).startswith(message), str(caught.value)


def test_the_largest_safe_integer_is_still_a_number():
    parsed = chat2desk.parse({"hook_type": "close_dialog", "request_id": 2**53 - 1, "dialog_id": -(2**53 - 1)})
    assert parsed.payload["request_id"] == 2**53 - 1


@pytest.mark.parametrize(
    "transport, channel",
    [
        ("whatsapp", "whatsapp"),
        ("wa_dialog", "whatsapp"),
        ("wa_business", "whatsapp"),
        ("telegram", "telegram"),
        ("insta_local", "instagram"),
        ("fb", "facebook"),
        ("vk", "vk"),
        ("sms", "sms"),
        ("line", "other"),
        ("", "other"),
        (None, "other"),
    ],
)
def test_channel_of_a_transport(transport, channel):
    assert chat2desk.channel_of(transport) == channel


# --- the knowledge base -------------------------------------------------------------------------
def entry(question: str, answer: str = "An answer.", keywords: str = "", enabled: bool = True) -> KnowledgeEntry:
    return KnowledgeEntry(question=question, answer=answer, keywords=keywords, enabled=enabled)


HOURS = entry("What are your opening hours?", "9:00 to 18:00.", "hours, open, horario")
DELIVERY = entry("Do you deliver to Rio de Janeiro?", "Yes, in two days.", "delivery, entrega")
PASSWORD = entry("How do I reset my account password?", "Use the link on the login page.")
HORARIO = entry("Qual o horário de funcionamento?", "Das 9h às 18h.")
ENTRIES = [HOURS, DELIVERY, PASSWORD]


@pytest.mark.parametrize(
    "question, expected",
    [
        ("When do you open?", HOURS),  # the keyword "open"
        ("Opening hours please", HOURS),  # stems: opening → open, hours → hour
        ("WHAT ARE YOUR OPENING HOURS", HOURS),
        ("Qual o horário de funcionamento?", HOURS),  # keyword "horario", accent and all
        ("Vocês fazem entrega?", DELIVERY),
        ("I forgot my password, how do I reset it?", PASSWORD),  # 2 of 3 question terms
        ("password", None),  # 1 of 3 is not enough
        ("Can I pay with bitcoin?", None),
        ("Hi, thanks!", None),  # stop words only
        ("", None),
    ],
)
def test_match_finds_the_entry_that_answers_the_question(question, expected):
    assert match(question, ENTRIES) is expected


@pytest.mark.parametrize("question", ["Qual o horario de funcionamento", "qual é o HORÁRIO de funcionamento?", "Horário de funcionamento"])
def test_pt_br_questions_match_with_or_without_accents(question):
    assert match(question, [DELIVERY, HORARIO]) is HORARIO


def test_a_keyword_hit_beats_a_partial_question_overlap():
    vague = entry("Are you open on public holidays and hours on Sunday?")
    assert match("what are the hours?", [vague, HOURS]) is HOURS


@pytest.mark.django_db
def test_the_knowledge_base_responder_answers_from_enabled_entries_of_the_site_only():
    site, other_site = SiteFactory(), SiteFactory()
    KnowledgeEntry.objects.create(site=site, question="What are your opening hours?", answer="9 to 6.", keywords="hours", enabled=False)
    KnowledgeEntry.objects.create(site=other_site, question="What are your opening hours?", answer="Theirs.", keywords="hours")
    KnowledgeEntry.objects.create(site=site, question="Do you deliver?", answer="Yes.", keywords="deliver")

    bot = KnowledgeBaseResponder()

    unanswered = bot.answer(site=site, question="What are your opening hours?", history=[])
    assert unanswered.text == "" and "no answer" in unanswered.handoff_reason
    assert bot.answer(site=site, question="Do you deliver to Lisbon?", history=[]).text == "Yes."


# --- the language model -------------------------------------------------------------------------
@pytest.fixture
def completions():
    fake = FakeCompletions(reply=lambda messages: "We open at nine.")
    yield fake
    fake.close()


def llm(fake, timeout: float = 5.0, api_key: str = "sk-test") -> LLMResponder:
    return LLMResponder(base_url=fake.url + "/v1/", api_key=api_key, model="gpt-test", timeout=timeout)


@pytest.mark.django_db
def test_the_model_gets_the_knowledge_base_and_the_conversation(completions):
    site = SiteFactory(name="Padaria Sol")
    KnowledgeEntry.objects.create(site=site, question="What are your opening hours?", answer="9:00 to 18:00.")
    KnowledgeEntry.objects.create(site=site, question="Secret?", answer="Hidden.", enabled=False)
    history = [
        Turn("visitor", "Hi"),
        Turn("ai", "Hello! How can I help?"),
        Turn("agent", "Sam here."),
        Turn("visitor", "When do you open?"),
    ]

    answer = llm(completions).answer(site=site, question="When do you open?", history=history)

    assert answer.text == "We open at nine." and answer.handoff_reason == ""
    (call,) = completions.calls
    assert call.headers["authorization"] == "Bearer sk-test"
    assert call.body["model"] == "gpt-test"
    system, *turns = call.body["messages"]
    assert system["role"] == "system"
    assert "Padaria Sol" in system["content"] and HANDOFF in system["content"]
    assert "Q: What are your opening hours?\nA: 9:00 to 18:00." in system["content"]
    assert "Hidden." not in system["content"]
    assert [(t["role"], t["content"]) for t in turns] == [
        ("user", "Hi"),
        ("assistant", "Hello! How can I help?"),
        ("assistant", "Sam here."),
        ("user", "When do you open?"),
    ], "the question already ends the history, so it is not sent twice"


@pytest.mark.django_db
def test_the_question_is_added_when_the_history_does_not_end_with_it(completions):
    llm(completions, api_key="").answer(site=SiteFactory(), question="Any news?", history=[Turn("ai", "Welcome!")])
    (call,) = completions.calls
    assert [(m["role"], m["content"]) for m in call.body["messages"][1:]] == [("assistant", "Welcome!"), ("user", "Any news?")]
    assert "authorization" not in call.headers
    assert "(empty)" in call.body["messages"][0]["content"]


@pytest.mark.django_db
@pytest.mark.parametrize("reply", ["HANDOFF", " HANDOFF. ", "", "   "])
def test_a_handoff_reply_hands_the_conversation_to_a_human(completions, reply):
    completions.reply = lambda messages: reply
    answer = llm(completions).answer(site=SiteFactory(), question="I want a person", history=[])
    assert answer.text == "" and "could not answer" in answer.handoff_reason


@pytest.mark.django_db
@pytest.mark.parametrize(
    "status, answer",
    [
        (500, {"error": {"message": "overloaded"}}),
        (429, {"error": {"message": "rate limited"}}),
        (200, {"choices": []}),
        (200, {"choices": [{"message": {}}]}),
        (200, ["not", "an", "object"]),
    ],
)
def test_a_failing_or_malformed_model_is_unavailable(completions, status, answer):
    completions.handle = lambda call: (status, answer)
    with pytest.raises(ResponderUnavailable):
        llm(completions).answer(site=SiteFactory(), question="Hi", history=[])
    assert len(completions.calls) == 1


@pytest.mark.django_db
def test_an_unreachable_model_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bot = LLMResponder(base_url=f"http://127.0.0.1:{port}/v1", api_key="", model="m", timeout=5)
    with pytest.raises(ResponderUnavailable, match="could not be reached"):
        bot.answer(site=SiteFactory(), question="Hi", history=[])


@pytest.mark.django_db
def test_a_model_that_never_answers_is_unavailable_after_the_timeout():
    with socket.socket() as silent:  # accepts connections (the backlog) and never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        bot = LLMResponder(base_url=f"http://127.0.0.1:{silent.getsockname()[1]}/v1", api_key="", model="m", timeout=0.3)
        with pytest.raises(ResponderUnavailable, match="timed out"):
            bot.answer(site=SiteFactory(), question="Hi", history=[])


def test_the_model_is_used_only_when_its_base_url_is_set(settings):
    settings.AGENTBOT_LLM_BASE_URL = ""
    assert isinstance(responder(), KnowledgeBaseResponder)

    settings.AGENTBOT_LLM_BASE_URL = "http://llm.internal/v1"
    settings.AGENTBOT_LLM_MODEL = "llama3"
    chosen = responder()
    assert isinstance(chosen, LLMResponder)
    assert (chosen.url, chosen.model) == ("http://llm.internal/v1/chat/completions", "llama3")


# --- the chat2desk delivery format --------------------------------------------------------------
CHAT2DESK = get_format("chat2desk")
AT = datetime(2026, 5, 21, 17, 45, 12, tzinfo=timezone.utc)


def reply_body(data: dict) -> dict:
    return CHAT2DESK.build_body(Envelope.of("evt_1", CHANNEL_REPLY.name, "site_1", AT, data))


def test_a_reply_is_chat2desks_message_to_the_client():
    body = reply_body(CHANNEL_REPLY.example)
    assert body == {
        "client_id": "12345678",
        "text": "Our opening hours are 9:00 to 18:00.",
        "type": "to_client",
        "transport": "whatsapp",
        "channel_id": "987654",
    }
    assert json.loads(jsjson.dumps(body)) == body


@pytest.mark.parametrize(
    "recipient, expected",
    [
        ({"client_id": 42}, {"client_id": 42, "text": "Hi", "type": "to_client"}),
        ({"client_id": "7", "transport": "", "channel_id": None}, {"client_id": "7", "text": "Hi", "type": "to_client"}),
        ("not an object", {"client_id": None, "text": "Hi", "type": "to_client"}),
    ],
)
def test_a_reply_sends_only_the_addressing_it_has(recipient, expected):
    assert reply_body({**CHANNEL_REPLY.example, "text": "Hi", "recipient": recipient}) == expected


def test_the_api_token_is_the_authorization_header():
    signing = Signing("dlv_1", CHANNEL_REPLY.name, b"{}", ["c2d-token", "old-token"], 1_700_000_000)
    assert CHAT2DESK.sign(signing) == {"Authorization": "c2d-token"}
    headers = CHAT2DESK.headers(signing)
    assert headers["Authorization"] == "c2d-token" and headers["Content-Type"] == "application/json"
    assert headers["X-Agentbot-Delivery-Id"] == "dlv_1"


@pytest.mark.parametrize(
    "status, body, success",
    [
        (200, b'{"status": "success", "data": {"message_id": 1}}', True),
        (201, b"", True),
        (200, b"OK", True),
        (200, b'{"status": "error", "message": "client not found"}', False),
        (200, b'["status", "error"]', True),
        (400, b'{"status": "success"}', False),
        (500, b"", False),
        (302, b"", False),
    ],
)
def test_success_is_2xx_unless_chat2desk_says_error(status, body, success):
    assert CHAT2DESK.is_success(status, body) is success


@pytest.mark.parametrize("event_type, carried", [(CHANNEL_REPLY.name, True), (MESSAGE_CREATED.name, False), (WEBHOOK_TEST.name, False)])
def test_the_format_carries_replies_only(event_type, carried):
    assert CHAT2DESK.carries(event_type) is carried


def test_a_deadline_caps_the_models_timeout_and_only_inside_its_block():
    import time

    from inbound.responder import MIN_MODEL_TIMEOUT, answering_by

    model = LLMResponder(base_url="http://llm.internal/v1", api_key="", model="m", timeout=30)
    assert model._timeout() == 30
    with answering_by(time.monotonic() + 2):
        assert 1 < model._timeout() <= 2
    with answering_by(time.monotonic() - 1):
        assert model._timeout() == MIN_MODEL_TIMEOUT
    assert model._timeout() == 30


@pytest.mark.django_db
def test_the_model_url_is_held_to_the_url_policy_and_nothing_reaches_a_refused_address(completions, settings):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    with pytest.raises(ResponderUnavailable, match="refused: the URL's host is a non-public address .*loopback"):
        llm(completions).answer(site=SiteFactory(), question="Hi", history=[])
    assert completions.calls == [], "the API key must not reach a loopback address"


@pytest.mark.django_db
def test_the_model_is_called_directly_whatever_the_proxy_variables_say(completions, monkeypatch):
    proxy = FakeCompletions(reply=lambda messages: "from the proxy")
    try:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        answer = llm(completions).answer(site=SiteFactory(), question="When do you open?", history=[])
    finally:
        proxy.close()
    assert answer.text == "We open at nine." and proxy.calls == [] and len(completions.calls) == 1


@pytest.mark.django_db
def test_a_redirecting_model_is_unavailable_and_the_redirect_not_followed(completions):
    completions.handle = lambda call: (302, {"error": {"message": "moved"}})
    with pytest.raises(ResponderUnavailable, match="answered 302"):
        llm(completions).answer(site=SiteFactory(), question="Hi", history=[])
    assert len(completions.calls) == 1
