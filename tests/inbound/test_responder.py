"""The responders without Chat2Desk: the knowledge-base matcher and the language model responder
(against a local OpenAI-compatible server)."""

import socket

import pytest

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
from tests.factories import SiteFactory
from tests.support.fake_chat2desk import FakeCompletions


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


@pytest.mark.parametrize(
    "question", ["Qual o horario de funcionamento", "qual é o HORÁRIO de funcionamento?", "Horário de funcionamento"]
)
def test_pt_br_questions_match_with_or_without_accents(question):
    assert match(question, [DELIVERY, HORARIO]) is HORARIO


def test_a_keyword_hit_beats_a_partial_question_overlap():
    vague = entry("Are you open on public holidays and hours on Sunday?")
    assert match("what are the hours?", [vague, HOURS]) is HOURS


@pytest.mark.django_db
def test_the_knowledge_base_responder_answers_from_enabled_entries_of_the_site_only():
    site, other_site = SiteFactory(), SiteFactory()
    KnowledgeEntry.objects.create(
        site=site, question="What are your opening hours?", answer="9 to 6.", keywords="hours", enabled=False
    )
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
@pytest.mark.parametrize("reply", ["LEAD_FORM", " LEAD_FORM. "])
def test_a_lead_form_reply_asks_the_visitor_for_the_lead_form(completions, reply):
    completions.reply = lambda messages: reply
    answer = llm(completions).answer(site=SiteFactory(), question="Can you call me back?", history=[])
    assert (answer.form, answer.handoff_reason) == ("lead_form", "") and answer.text
    assert "LEAD_FORM" in completions.calls[0].body["messages"][0]["content"], "the prompt says when to ask for it"


@pytest.mark.django_db
def test_a_knowledge_base_answer_with_the_marker_asks_for_the_lead_form():
    site = SiteFactory()
    KnowledgeEntry.objects.create(site=site, question="Can someone contact me?", answer="[[lead_form]] We will call you.")
    KnowledgeEntry.objects.create(site=site, question="What are your opening hours?", answer="9:00 to 18:00.")

    asked = KnowledgeBaseResponder().answer(site=site, question="Can someone contact me?", history=[])
    hours = KnowledgeBaseResponder().answer(site=site, question="What are your opening hours?", history=[])

    assert (asked.text, asked.form) == ("We will call you.", "lead_form")
    assert (hours.text, hours.form) == ("9:00 to 18:00.", "")


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
