"""The agent's reply to a visitor: a knowledge-base matcher, or an OpenAI-compatible model.

A responder gets the question and the conversation so far and gives back an `Answer`: a text to
send, or a reason to hand the conversation to a human. It raises `ResponderUnavailable` when it
could not decide (the model did not answer); the caller retries later.
"""

import json
import re
import time
import unicodedata
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

from core.db import db_connection_release
from core.models import Site
from deliveries.engine import http
from inbound import forms
from inbound.models import KnowledgeEntry

HANDOFF = "HANDOFF"
HISTORY = 20
# A caller that must answer by a time (a synchronous channel's budget) caps the model's wait here.
_answer_by: ContextVar[float | None] = ContextVar("answer_by", default=None)
MIN_MODEL_TIMEOUT = 0.1


@contextmanager
def answering_by(deadline: float):
    """Within this block the model is waited for no later than `deadline` (time.monotonic())."""
    token = _answer_by.set(deadline)
    try:
        yield
    finally:
        _answer_by.reset(token)


@dataclass(frozen=True)
class Answer:
    text: str = ""
    handoff_reason: str = ""
    form: str = ""  # a form the visitor is asked to fill in with the text (inbound/forms.py)


@dataclass(frozen=True)
class Turn:
    sender_type: str  # visitor, agent or ai
    body: str


class ResponderUnavailable(Exception):
    pass


class Responder(Protocol):
    def answer(self, *, site: Site, question: str, history: list[Turn]) -> Answer: ...


def knowledge_of(site: Site) -> list[KnowledgeEntry]:
    return list(KnowledgeEntry.objects.filter(site=site, enabled=True).order_by("question"))


# --- the knowledge base -----------------------------------------------------------------------
# Words that say nothing about what is asked, in English and Brazilian Portuguese.
STOPWORDS = frozenset(
    """a an and are as at be but by can could do does for from have how i if in is it me my of on or
    our please should so than that the their them there this to us was we what when where which who
    why will with would you your hi hello thanks thank
    o os as um uma uns umas e de da do das dos em no na nos nas por para com que qual quais quando
    onde como eu voce voces seu sua meu minha ola oi obrigado obrigada favor se ser esta estao
    tem""".split()
)


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "ed", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def terms(text: str) -> set[str]:
    """Lower-case, accent-free word stems of `text`, without the stop words."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", plain) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())}


def match(question: str, entries: list[KnowledgeEntry]) -> KnowledgeEntry | None:
    """The entry that answers `question`: one whose keyword phrase is all there, else the one
    whose question's terms are most covered, if at least half of them are."""
    asked = terms(question)
    if not asked:
        return None
    best, best_score = None, 0.0
    for entry in entries:
        keywords = [terms(k) for k in entry.keywords.split(",")]
        if any(k and k <= asked for k in keywords):
            score = 2.0
        else:
            wanted = terms(entry.question)
            score = len(asked & wanted) / len(wanted) if wanted else 0.0
        if score > best_score:
            best, best_score = entry, score
    return best if best_score >= 0.5 else None


class KnowledgeBaseResponder:
    def answer(self, *, site: Site, question: str, history: list[Turn]) -> Answer:
        entry = match(question, knowledge_of(site))
        if entry is None:
            return Answer(handoff_reason="The knowledge base has no answer to the visitor's question.")
        if forms.MARKER in entry.answer:
            return Answer(text=entry.answer.replace(forms.MARKER, "").strip() or forms.ASK_TEXT, form=forms.LEAD_FORM)
        return Answer(text=entry.answer)


# --- an OpenAI-compatible chat completions API ------------------------------------------------
def system_prompt(site: Site, entries: list[KnowledgeEntry]) -> str:
    knowledge = "\n\n".join(f"Q: {e.question}\nA: {e.answer}" for e in entries) or "(empty)"
    return (
        f"You are the customer-service agent of {site.name or 'this website'}. Answer the visitor briefly, "
        "in the visitor's language, using only the knowledge base below. If the knowledge base does not "
        f"answer the question, or the visitor asks for a person, reply with exactly {HANDOFF} and nothing else. "
        f"If the visitor asks to be contacted or called back, reply with exactly {forms.MODEL_REPLY} and nothing else.\n\n"
        f"Knowledge base:\n{knowledge}"
    )


ROLES = {"visitor": "user", "ai": "assistant", "agent": "assistant"}
# A completion is a few KB; more than this is not an answer we can use.
MODEL_RESPONSE_CAP = 1024 * 1024


class LLMResponder:
    def __init__(self, *, base_url: str, api_key: str, model: str, timeout: float):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.model = model
        self.timeout = timeout

    def _timeout(self) -> float:
        deadline = _answer_by.get()
        if deadline is None:
            return self.timeout
        return max(MIN_MODEL_TIMEOUT, min(self.timeout, deadline - time.monotonic()))

    def answer(self, *, site: Site, question: str, history: list[Turn]) -> Answer:
        messages = [{"role": "system", "content": system_prompt(site, knowledge_of(site))}]
        messages += [{"role": ROLES[t.sender_type], "content": t.body} for t in history[-HISTORY:]]
        if not history or history[-1].body != question or history[-1].sender_type != "visitor":
            messages.append({"role": "user", "content": question})
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = json.dumps({"model": self.model, "messages": messages, "temperature": 0.2}).encode()
        # The model may take seconds: no pooled database connection waits with it (docs/limits.md).
        db_connection_release()
        # The one hardened client: the URL policy at connect time, no redirects, no proxies from
        # the environment, a capped response.
        response = http.post(http.OutboundRequest(self.url, body, headers, timeout=self._timeout(), body_cap=MODEL_RESPONSE_CAP))
        if response.error:
            raise ResponderUnavailable(f"the language model at {self.url} could not be reached: {response.error}")
        if response.status_code != 200:
            text = response.body[:200].decode("utf-8", "replace")
            raise ResponderUnavailable(f"the language model answered {response.status_code}: {text}")
        try:
            content = json.loads(response.body)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
            raise ResponderUnavailable("the language model's answer has no choices[0].message.content") from exc
        text = content.strip() if isinstance(content, str) else ""
        if not text or text.strip(" .") == HANDOFF:
            return Answer(handoff_reason="The language model could not answer from the knowledge base.")
        if text.strip(" .") == forms.MODEL_REPLY:
            return Answer(text=forms.ASK_TEXT, form=forms.LEAD_FORM)
        return Answer(text=text)


def responder() -> Responder:
    """The model when AGENTBOT_LLM_BASE_URL is set, the knowledge-base matcher otherwise."""
    if settings.AGENTBOT_LLM_BASE_URL:
        return LLMResponder(
            base_url=settings.AGENTBOT_LLM_BASE_URL,
            api_key=settings.AGENTBOT_LLM_API_KEY,
            model=settings.AGENTBOT_LLM_MODEL,
            timeout=settings.AGENTBOT_LLM_TIMEOUT,
        )
    return KnowledgeBaseResponder()
