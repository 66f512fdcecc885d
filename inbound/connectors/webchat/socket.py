"""The webchat widget's Socket.IO endpoint, `/socket.io/` (Engine.IO long-polling and websocket),
served next to Django by agentbot/asgi.py.

Thin handlers: the rules are in inbound/connectors/webchat/services.py. Everything that touches the database
runs on a thread pool of its own, never on the event loop, so a slow model answer for one visitor
holds one thread, not the server. A connection's messages are handled one at a time, in order.

Events (docs/inbound/webchat.md):
  client → server  connect with auth {integration, session?, page_url?}; `message` {text} (ack:
                   {ok: true, id} or {ok: false, error, message})
  server → client  `session` {session, resumed, conversation_id, messages, limits}; `message` (the
                   agent's or a person's message); `typing` {typing}; `handoff` {message};
                   `notice` {message}; `error` {error, message}; a refused connect is Socket.IO's
                   connect_error with {message, data: {error}}
"""

import asyncio
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import socketio
from django.conf import settings
from django.db import close_old_connections

from core import jsonlimits
from inbound.connectors.webchat import services as webchat
from inbound.origins import origin_normalise

logger = logging.getLogger(__name__)
NAMESPACE = "/"
# After this many refused messages in a row the connection is closed: a client that ignores every
# error is not a person.
MAX_REFUSED_IN_A_ROW = 50


def _max_frame() -> int:
    # Room for the longest allowed message JSON-escaped (up to 6 bytes a character) and its
    # envelope, so an over-long message gets its clear error; a far larger frame closes the socket.
    return settings.AGENTBOT_WEBCHAT_MAX_MESSAGE_CHARS * 6 + 4096


class _MalformedPackets(logging.Filter):
    """The engine logs a client's malformed packet (not JSON, an unknown type, nested too deep) as a
    server error with its traceback: it is the client's fault and is ignored, so one line says so."""

    CLIENT_FAULTS = (ValueError, TypeError, IndexError, KeyError, RecursionError)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], self.CLIENT_FAULTS):
            record.msg, record.args = "webchat: a malformed packet was ignored (%s)", (type(record.exc_info[1]).__name__,)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


# The libraries' own loggers (they would add a handler of their own and log each packet at INFO).
socketio_logger = logging.getLogger("agentbot.webchat.socketio")
engineio_logger = logging.getLogger("agentbot.webchat.engineio")
for library_logger in (socketio_logger, engineio_logger):
    library_logger.setLevel(logging.WARNING)
engineio_logger.addFilter(_MalformedPackets())


def _origin_checked_at_connect(origin, environ) -> bool:
    """The engine lets every origin through (and answers polling requests with CORS headers for
    it, so a page's browser may read them): the connect handler checks the integration's allowed
    origins and says why it refuses, whatever the transport."""
    return True


# Both Engine.IO transports, as the official socket.io-client's defaults use them: HTTP
# long-polling first, then the upgrade to a websocket (or polling alone, where a network blocks
# websockets). Polling keeps a client's session in this process, so several web processes need
# sticky sessions for it (docs/inbound/webchat.md); the websocket transport needs none. The size limit applies to
# a polling POST as to a websocket frame; the rate and connection limits are the connection's.
sio = socketio.AsyncServer(
    async_mode="asgi",
    transports=["polling", "websocket"],
    cors_allowed_origins=_origin_checked_at_connect,
    cors_credentials=False,
    max_http_buffer_size=_max_frame(),
    json=jsonlimits.SocketJson,  # frames under the limits of every JSON read (a refused one is a malformed packet)
    logger=socketio_logger,
    engineio_logger=engineio_logger,
)

_pool = ThreadPoolExecutor(max_workers=settings.AGENTBOT_WEBCHAT_THREADS, thread_name_prefix="webchat")


class Gone(Exception):
    """The work was for a client that has left before a thread was free for it: not done."""


def _in_thread(fn, kwargs, wanted):
    if wanted is not None and not wanted():
        raise Gone
    close_old_connections()
    try:
        return fn(**kwargs)
    finally:
        # Back to the process's pool (shared with the REST API) as soon as the work is done; the
        # services give it back themselves while they wait on a model (core/db.py).
        close_old_connections()


async def db(fn, *, wanted=None, **kwargs):
    """Run `fn(**kwargs)` (ORM work) on the webchat thread pool. `wanted`: asked once a thread is
    free; when it says no (the visitor has left), nothing is done and Gone is raised, so a flood's
    queue drains without being stored once its clients are gone."""
    return await asyncio.get_running_loop().run_in_executor(_pool, partial(_in_thread, fn, kwargs, wanted))


def _connected(sid: str, visitor: "Visitor"):
    return lambda: visitors.get(sid) is visitor


@dataclass
class Visitor:
    session: webchat.Session
    bucket: webchat.TokenBucket
    cursor: str  # the agent's messages from this time on are new to the widget
    # Messages are stored, then answered, in the order they came: each step one at a time.
    storing: asyncio.Lock = field(default_factory=asyncio.Lock)
    answering: asyncio.Lock = field(default_factory=asyncio.Lock)
    seen: set[str] = field(default_factory=set)
    refused_in_a_row: int = 0
    poller: asyncio.Task | None = None
    address: str = ""


visitors: dict[str, Visitor] = {}
# Open connections (and connects under way) per client address, in this process.
connections_by_address: Counter[str] = Counter()


def client_address(environ: dict) -> str:
    """The client's address as the ASGI server saw it (uvicorn's --proxy-headers puts a trusted
    proxy's X-Forwarded-For there); the engine's own REMOTE_ADDR is always 127.0.0.1."""
    client = (environ.get("asgi.scope") or {}).get("client")
    return str(client[0]) if client else ""


def address_release(address: str) -> None:
    connections_by_address[address] -= 1
    if connections_by_address[address] <= 0:
        del connections_by_address[address]


def visitor_forget(sid: str) -> Visitor | None:
    """Drop a connection's visitor (once) and give its address's place back."""
    visitor = visitors.pop(sid, None)
    if visitor is not None:
        address_release(visitor.address)
    return visitor


def own_origins(environ: dict) -> list[str]:
    """The origin of the service's own pages, as this connection reached it."""
    host = environ.get("HTTP_HOST", "")
    scheme = "https" if environ.get("wsgi.url_scheme") in ("https", "wss") else "http"
    try:
        return [origin_normalise(f"{scheme}://{host}")] if host else []
    except ValueError:
        return []


@sio.event
async def connect(sid, environ, auth):
    address = client_address(environ)
    limit = settings.AGENTBOT_WEBCHAT_MAX_CONNECTIONS_PER_ADDRESS
    if limit and connections_by_address[address] >= limit:
        raise socketio.exceptions.ConnectionRefusedError(
            f"too many chats are open from your address (at most {limit}); close one and try again",
            {"error": "too_many_connections"},
        )
    connections_by_address[address] += 1  # counted before the wait, so parallel connects count too
    try:
        session = await db(webchat.session_open, auth=auth, origin=environ.get("HTTP_ORIGIN"), own_origins=own_origins(environ))
    except webchat.VisitorRefused as exc:
        address_release(address)
        raise socketio.exceptions.ConnectionRefusedError(str(exc), {"error": exc.code}) from None
    except Exception:
        address_release(address)
        logger.exception("webchat connect failed")
        raise socketio.exceptions.ConnectionRefusedError(
            "the chat is unavailable right now; try again in a minute", {"error": "unavailable"}
        ) from None
    history = session.history
    visitor = Visitor(
        session=session,
        bucket=webchat.TokenBucket(rate=settings.AGENTBOT_WEBCHAT_RATE, burst=settings.AGENTBOT_WEBCHAT_BURST),
        cursor=history[-1]["created_at"] if history else webchat.now_iso(),
        seen={m["id"] for m in history},
        address=address,
    )
    visitors[sid] = visitor
    logger.info(
        "webchat connected",
        extra={"integration_id": session.integration.id, "resumed": session.resumed, "conversation_id": session.conversation_id},
    )
    sio.start_background_task(_welcome, sid, visitor)


async def _welcome(sid: str, visitor: Visitor) -> None:
    """The session goes out once the client has its CONNECT (the handler's return sends it)."""
    for _ in range(500):
        if sio.manager.is_connected(sid, NAMESPACE):
            break
        await asyncio.sleep(0.01)
    else:  # gone during the handshake: no disconnect event will come for it
        visitor_forget(sid)
        return
    await sio.emit("session", visitor.session.as_event(), to=sid)
    if visitor.session.conversation_id:
        _follow(sid, visitor)


@sio.event
async def disconnect(sid, reason=None):
    visitor = visitor_forget(sid)
    if visitor is not None and visitor.poller is not None:
        visitor.poller.cancel()


async def _refuse(sid: str, visitor: Visitor, refused: webchat.VisitorRefused) -> dict:
    visitor.refused_in_a_row += 1
    await sio.emit("error", refused.as_dict(), to=sid)
    if visitor.refused_in_a_row >= MAX_REFUSED_IN_A_ROW:
        await sio.disconnect(sid)
    return {"ok": False, **refused.as_dict()}


@sio.on("message")
async def message(sid, data=None, *ignored):
    visitor = visitors.get(sid)
    if visitor is None:
        return {"ok": False, "error": "not_connected", "message": "connect first"}
    try:
        text = webchat.message_text(data)
        if not visitor.bucket.take():
            rate = settings.AGENTBOT_WEBCHAT_RATE
            raise webchat.VisitorRefused(
                "rate_limited", f"you are sending messages too fast: wait a moment, then send again (at most {rate:g} a second)"
            )
    except webchat.VisitorRefused as refused:
        return await _refuse(sid, visitor, refused)
    visitor.refused_in_a_row = 0
    async with visitor.storing:
        try:
            event = await db(webchat.message_receive, wanted=_connected(sid, visitor), session=visitor.session, text=text)
        except Gone:
            return {"ok": False, "error": "not_connected", "message": "connect first"}
        except Exception:
            logger.exception("webchat message not stored", extra={"integration_id": visitor.session.integration.id})
            return await _refuse(
                sid, visitor, webchat.VisitorRefused("unavailable", "the message could not be stored; send it again in a minute")
            )
        sio.start_background_task(_answer, sid, visitor, event.id)
    return {"ok": True, "id": event.id}


async def _answer(sid: str, visitor: Visitor, event_id: str) -> None:
    async with visitor.answering:
        await sio.emit("typing", {"typing": True}, to=sid)
        try:
            outcome = await db(webchat.message_answer, wanted=_connected(sid, visitor), event_id=event_id)
        except Gone:  # stored, and answered by a worker's inbound sweep instead
            return
        except Exception:
            logger.exception("webchat answer failed", extra={"inbound_event_id": event_id})
            outcome = webchat.VisitorAnswer(None, [], False, True)
        finally:
            await sio.emit("typing", {"typing": False}, to=sid)
        if outcome.conversation_id:  # the poller follows the visitor's conversation, a new one too
            visitor.session.conversation_id = outcome.conversation_id
        await _send_new(sid, visitor, outcome.replies)
        if outcome.handoff:
            await sio.emit("handoff", {"conversation_id": outcome.conversation_id, "message": webchat.HANDOFF_NOTICE}, to=sid)
        elif outcome.pending:
            await sio.emit("notice", {"message": webchat.PENDING_NOTICE}, to=sid)
        _follow(sid, visitor)


async def _send_new(sid: str, visitor: Visitor, messages: list[dict]) -> None:
    for item in messages:
        if item["id"] in visitor.seen:
            continue
        visitor.seen.add(item["id"])
        visitor.cursor = max(visitor.cursor, item["created_at"])
        await sio.emit("message", item, to=sid)


def _follow(sid: str, visitor: Visitor) -> None:
    """Poll the conversation for what did not come back with its question: a retried answer, a
    person's reply from the API or the admin."""
    if visitor.poller is None and visitor.session.conversation_id and settings.AGENTBOT_WEBCHAT_POLL_INTERVAL > 0:
        visitor.poller = asyncio.ensure_future(_poll(sid, visitor))


async def _poll(sid: str, visitor: Visitor) -> None:
    while sid in visitors:
        await asyncio.sleep(settings.AGENTBOT_WEBCHAT_POLL_INTERVAL)
        try:
            found = await db(webchat.messages_after, conversation_id=visitor.session.conversation_id, after=visitor.cursor)
            await _send_new(sid, visitor, found)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("webchat poll failed", extra={"conversation_id": visitor.session.conversation_id})
