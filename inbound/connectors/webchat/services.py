"""The webchat connector: visitors talk to the agent from the embeddable widget over a
Socket.IO connection instead of HTTP webhooks.

The socket server (socket.py) only translates between Socket.IO and the
functions here. A visitor's session is an opaque token signed for one integration; the random
id inside it is the visitor's id at the integration (the conversation's `external_id`), so
reconnecting with the token finds the visitor's open conversation. Each visitor message is an
inbound event like any other channel's: stored with `inbound_receive(dispatch=False)` and answered
by the socket server's own process with `inbound_answer`, so the reply goes back on the same
connection; the sweep still finishes an event whose process died.
"""

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.utils import timezone

from core import ids
from core.text import text_is_storable
from domain.models import Conversation, Message
from inbound import services
from inbound.models import INBOUND_PENDING, ConnectorType, InboundEvent, Integration
from inbound.origins import DEFAULT_PORTS, origin_normalise
from inbound.parsed import Parsed

CHANNEL = "web"
HISTORY = 50
LOOKBACK = 30  # seconds
HANDOFF_NOTICE = "Thanks for your message. A person from our team will answer here as soon as possible."
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
PENDING_NOTICE = "The answer is taking longer than usual; it will appear here."


class VisitorRefused(Exception):
    """The visitor's request cannot be served; `code` for programs, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def as_dict(self) -> dict:
        return {"error": self.code, "message": str(self)}


# --- connections and sessions ------------------------------------------------------------------
def origins_of(integration: Integration) -> list[str]:
    return [line for line in integration.allowed_origins.splitlines() if line.strip()]


def origin_allowed(*, integration: Integration, origin: str, own_origins: list[str]) -> bool:
    """A page may open the widget when its origin is in the integration's list; with an empty list,
    only the service's own pages (the demo page) may."""
    try:
        origin = origin_normalise(origin)
    except ValueError:
        return False
    allowed = origins_of(integration)
    return origin in allowed if allowed else origin in own_origins


def _signer(integration: Integration) -> signing.Signer:
    return signing.Signer(salt=f"agentbot.webchat.session:{integration.id}")


def session_token(*, integration: Integration, visitor_id: str) -> str:
    return _signer(integration).sign(visitor_id)


def _visitor_of(integration: Integration, token) -> str | None:
    if not isinstance(token, str) or not token or len(token) > 200:
        return None
    try:
        return _signer(integration).unsign(token)
    except signing.BadSignature:
        return None


@dataclass
class Session:
    integration: Integration
    visitor_id: str
    token: str
    resumed: bool
    page_url: str = ""
    conversation_id: str | None = None
    history: list[dict] = field(default_factory=list)

    def as_event(self) -> dict:
        return {
            "session": self.token,
            "resumed": self.resumed,
            "conversation_id": self.conversation_id,
            "messages": self.history,
            "limits": limits(),
        }


def limits() -> dict:
    return {
        "max_message_chars": settings.AGENTBOT_WEBCHAT_MAX_MESSAGE_CHARS,
        "messages_per_second": settings.AGENTBOT_WEBCHAT_RATE,
        "burst": settings.AGENTBOT_WEBCHAT_BURST,
    }


def _page_url(value) -> str:
    if value in (None, ""):
        return ""
    valid = isinstance(value, str) and len(value) <= 2048 and text_is_storable(value)
    if not valid or urlsplit(value).scheme not in DEFAULT_PORTS:
        raise VisitorRefused("invalid_page_url", "page_url must be the page's http(s) URL, at most 2048 characters")
    return value


def session_open(*, auth, origin: str | None, own_origins: list[str]) -> Session:
    """A connecting widget: its integration must be an active webchat one that allows the page's
    origin. The session it names resumes the visitor's open conversation; an unknown, forged or
    missing one starts a new session."""
    if not isinstance(auth, dict) or not isinstance(auth.get("integration"), str):
        raise VisitorRefused(
            "invalid_auth", 'connect with auth {"integration": "intg_…", "session": "<saved session, optional>"}'
        )
    integration_id = auth["integration"][:100]
    # Checked by its grammar before any query: an anonymous client's NUL or other junk is a clear
    # refusal, never a database error (and an ERROR line) it could cause at will.
    if not ids.is_id(integration_id, "intg"):
        raise VisitorRefused(
            "integration_not_found",
            f"there is no webchat integration {ascii(integration_id)[1:-1][:100]}; check data-integration (an id as intg_01…)",
        )
    integration = (
        Integration.objects.select_related("site").filter(pk=integration_id, connector_type=ConnectorType.WEBCHAT).first()
    )
    if integration is None:
        raise VisitorRefused("integration_not_found", f"there is no webchat integration {integration_id}; check data-integration")
    if not integration.active:
        raise VisitorRefused("integration_inactive", f"webchat integration {integration.id} is not active")
    if not origin:
        raise VisitorRefused(
            "origin_required", "the connection has no Origin header; a page's browser sends it, other clients must too"
        )
    if not origin_allowed(integration=integration, origin=origin, own_origins=own_origins):
        raise VisitorRefused(
            "origin_not_allowed",
            f"pages on {origin[:200]} may not open this chat: add the origin to the allowed origins of integration {integration.id}",
        )
    page_url = _page_url(auth.get("page_url"))
    visitor_id = _visitor_of(integration, auth.get("session"))
    if visitor_id is None:
        visitor_id = "web_" + secrets.token_urlsafe(18)
        return Session(integration, visitor_id, session_token(integration=integration, visitor_id=visitor_id), False, page_url)
    session = Session(integration, visitor_id, auth["session"], True, page_url)
    conversation = _open_conversation(integration, visitor_id)
    if conversation is not None:
        session.conversation_id = conversation.id
        recent = Message.objects.filter(conversation=conversation).order_by("-created_at", "-id")[:HISTORY]
        session.history = [message_view(m) for m in reversed(recent)]
    return session


def _open_conversation(integration: Integration, visitor_id: str) -> Conversation | None:
    return (
        Conversation.objects.filter(integration=integration, external_id=visitor_id, status="open")
        .order_by("-created_at")
        .first()
    )


def message_view(message: Message) -> dict:
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "sender_type": message.sender_type,
        "text": message.body,
        "created_at": message.created_at.strftime(TIME_FORMAT),
    }


# --- messages ----------------------------------------------------------------------------------
class TokenBucket:
    """At most `rate` messages a second on average, `burst` at once."""

    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, max(burst, 1)
        self.tokens = float(self.burst)
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def message_text(data) -> str:
    """The visitor's text from a `message` event, `{"text": "…"}`; VisitorRefused when it cannot be stored."""
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise VisitorRefused("invalid_message", 'send a message as {"text": "your question"}')
    text = data["text"].strip()
    limit = settings.AGENTBOT_WEBCHAT_MAX_MESSAGE_CHARS
    if not text:
        raise VisitorRefused("empty_message", "the message is empty: type a question first")
    if len(text) > limit:
        raise VisitorRefused("message_too_long", f"the message has {len(text)} characters; shorten it to at most {limit}")
    if not text_is_storable(text):
        raise VisitorRefused(
            "invalid_message", "the message contains characters that cannot be stored (NUL or unpaired surrogates)"
        )
    return text


def message_receive(*, session: Session, text: str) -> InboundEvent:
    """Store the visitor's message as an inbound event of the integration, to answer here."""
    payload = {
        "text": text,
        "client_id": session.visitor_id,
        "channel": CHANNEL,
        "addressing": {"visitor_id": session.visitor_id},
        # The visitor id, not the signed session id that resumes the conversation.
        "source": {"sessionId": session.visitor_id},
        "page_url": session.page_url,
    }
    return services.inbound_receive(
        integration=session.integration, parsed=Parsed(kind="message", payload=payload), dispatch=False
    )


@dataclass
class VisitorAnswer:
    """What the visitor gets back for one message: the replies, or a person has it, or later."""

    conversation_id: str | None
    replies: list[dict]
    handoff: bool  # no answer: the conversation is with a person
    pending: bool  # not finished yet: the answer comes later (see messages_after)


def message_answer(*, event_id: str) -> VisitorAnswer:
    """Apply and answer the stored event here (the model may take seconds: call it off the event loop)."""
    event = services.inbound_answer(event_id=event_id, wait=settings.AGENTBOT_WEBCHAT_ANSWER_WAIT)
    replies = [message_view(m) for m in services.inbound_replies(event)]
    pending = event.status in INBOUND_PENDING
    handoff = False
    if not replies and not pending and event.conversation_id:
        handoff = Conversation.objects.filter(pk=event.conversation_id, session="paused").exists()
    return VisitorAnswer(event.conversation_id, replies, handoff, pending)


def messages_after(*, conversation_id: str, after: str) -> list[dict]:
    """The agent's and people's messages of the conversation since `after` (a message view's
    `created_at`): answers that came later than their question's event (a retried model call) and
    a person's replies from the API or the admin."""
    # A message is stamped before its transaction commits, so one can show up later than a newer
    # one: look back a little, and let the caller skip what it has sent already.
    since = datetime.fromisoformat(after) - timedelta(seconds=LOOKBACK)
    found = Message.objects.filter(conversation_id=conversation_id, created_at__gte=since)
    found = found.exclude(sender_type="visitor").order_by("created_at", "id")
    return [message_view(m) for m in found[:HISTORY]]


def now_iso() -> str:
    return timezone.now().strftime(TIME_FORMAT)


def widget_url(base_url: str) -> str:
    return f"{base_url}/static/webchat/widget.js"


def embed_snippet(*, integration: Integration, base_url: str) -> str:
    """The tag a site adds to its pages (text to show and copy, not markup to render)."""
    return f'<script src="{widget_url(base_url)}" data-integration="{integration.id}" async></script>'
