"""The one outbound HTTP client: pooled keep-alive connections, bounded time, no redirects, capped
response bodies, and the URL policy checked again right before each request.

One asyncio event loop and one pool of HTTP/1.1 connections (`http1.py`) per process, in a
background thread, shared by every caller: the delivery engine awaits `send()` on that loop;
synchronous code calls `post()`. A host name is resolved through the URL policy and a new
connection goes to the very addresses that were checked, so DNS cannot swap in a private address
between check and connect.
"""

import asyncio
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from ssl import SSLContext

from django.conf import settings

from core.process import PerProcess
from deliveries.engine import http1
from subscriptions.url_policy import Target, UrlNotAllowed, resolve_allowed, url_parse

# Seconds an unused connection is kept, and the most a new connection may take (within the request's own).
KEEPALIVE = 30.0
CONNECT_TIMEOUT = 10.0


@dataclass
class OutboundRequest:
    url: str
    body: bytes
    headers: dict[str, str]
    method: str = "POST"
    timeout: float | None = None  # seconds; AGENTBOT_HTTP_TIMEOUT when None
    body_cap: int | None = None  # bytes of the response kept; AGENTBOT_RESPONSE_BODY_CAP when None
    ssl: SSLContext | None = None  # a webhook's own TLS (client certificate, private CA); the default when None


@dataclass
class OutboundResult:
    status_code: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    duration_ms: int = 0
    error: str = ""
    # A broker destination (deliveries/engine/amqp.py): the broker confirmed the message. No status code
    # there; this is its success.
    confirmed: bool = False


@lru_cache(maxsize=4096)
def _literal_verdict(target: Target, allow_private: bool) -> list | UrlNotAllowed:
    """The policy's answer for an IP-literal host never changes (no DNS), so it is asked once."""
    try:
        return resolve_allowed(target)
    except UrlNotAllowed as exc:
        return exc


async def allowed_addresses(target: Target) -> list:
    """The URL policy for `target`; DNS (blocking) runs off the loop, an IP literal is checked inline."""
    if target.address is None:
        return await asyncio.get_running_loop().run_in_executor(None, resolve_allowed, target)
    verdict = _literal_verdict(target, settings.AGENTBOT_ALLOW_PRIVATE_URLS)
    if isinstance(verdict, UrlNotAllowed):
        raise verdict
    return verdict


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop unless AGENTBOT_HTTP_LOOP says `asyncio`: the same requests for less CPU on the
    loop, which one worker process's sending is bound by."""
    if settings.AGENTBOT_HTTP_LOOP == "uvloop":
        try:
            import uvloop
        except ImportError:  # a platform without it (Windows) runs on asyncio's own loop
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class Client:
    """The process's event loop (in a daemon thread) and its pool of keep-alive connections."""

    def __init__(self) -> None:
        self.loop = new_event_loop()
        self._ready = threading.Event()
        self._pool: http1.Pool | None = None
        self.thread = threading.Thread(target=self._run, name="webhook-http", daemon=True)
        self.thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    @property
    def pool(self) -> http1.Pool:
        """Created on the loop, on first use."""
        if self._pool is None:
            self._pool = http1.Pool(settings.AGENTBOT_HTTP_CONNECTIONS, keepalive=KEEPALIVE)
        return self._pool

    def run(self, coroutine):
        """Run `coroutine` on the loop from another thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()


_CLIENT = PerProcess(Client)


def client() -> Client:
    """This process's client; a forked child (a Celery pool process) starts its own."""
    return _CLIENT.get()


async def send(request: OutboundRequest) -> OutboundResult:
    """One request (a POST unless told) on the process's pool; never raises, every failure is in `result.error`."""
    timeout = settings.AGENTBOT_HTTP_TIMEOUT if request.timeout is None else request.timeout
    cap = settings.AGENTBOT_RESPONSE_BODY_CAP if request.body_cap is None else request.body_cap
    started = time.monotonic()
    result = OutboundResult()
    conn = response = None
    try:
        # One parse: the host checked here is the one connected to, at the very addresses checked.
        target = url_parse(request.url)
        addresses = await allowed_addresses(target)
        url = target.url
        data = http1.encode_request(
            request.method, url.raw_path_qs or "/", url.host_port_subcomponent, request.headers, request.body
        )
        tls = None if target.scheme == "http" else (request.ssl or http1.default_tls())
        key = (target.scheme, target.host, target.port, tls)
        pool = client().pool
        async with asyncio.timeout(timeout):
            await pool.acquire()
            try:
                conn = pool.take(key)
                if conn is None:
                    async with asyncio.timeout(min(timeout, CONNECT_TIMEOUT)):
                        conn = await http1.connect(key, addresses, target.port, tls, target.host)
                response = conn.request(data, cap)
                await response.done
            finally:
                if conn is not None:
                    pool.put(conn)
                pool.release_slot()
        result.status_code = response.status
        result.headers = response.headers
        result.body = b"".join(response.body)
    except UrlNotAllowed as exc:
        result.error = f"refused: {exc}"
    except TimeoutError:
        # A status line already read is kept with the error (an answer cut short is no success).
        result.status_code = response.status if response is not None else None
        reading = f" reading the response body (HTTP {result.status_code})" if result.status_code is not None else ""
        result.error = f"timed out after {timeout:g} s{reading}"
    except (http1.ConnectError, http1.ResponseError) as exc:
        result.status_code = response.status if response is not None else None
        result.error = f"connection failed: {_short(exc)}"
    except ValueError as exc:
        result.error = f"request failed: {_short(exc)}"
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def post(request: OutboundRequest) -> OutboundResult:
    """Send one request from synchronous code."""
    return client().run(send(request))
