"""The one outbound HTTP client: pooled keep-alive connections, bounded time, no redirects, capped
response bodies, and the URL policy checked again right before each request.

One asyncio event loop and one aiohttp session per process, in a background thread, shared by
every caller: the delivery engine awaits `send()` on that loop; synchronous code calls `post()`. A host name is resolved through the URL policy and the connection goes to the very
addresses that were checked, so DNS cannot swap in a private address between check and connect.
"""

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from ssl import SSLContext

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from django.conf import settings

from core.process import PerProcess
from subscriptions.url_policy import Target, UrlNotAllowed, resolve_allowed, url_parse


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


class PolicyResolver(AbstractResolver):
    """aiohttp connects only to addresses the URL policy allowed, resolved when it connects."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        # `host` is the raw host of the very URL object send() checked (aiohttp resolves names only).
        addresses = await allowed_addresses(url_parse(f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"))
        return [
            ResolveResult(
                hostname=host,
                host=str(ip),
                port=port,
                family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for ip in addresses
        ]

    async def close(self) -> None:
        pass


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop unless AGENTBOT_HTTP_LOOP says `asyncio`: the same aiohttp requests for about a
    quarter less CPU on the loop, which one worker process's sending is bound by."""
    if settings.AGENTBOT_HTTP_LOOP == "uvloop":
        try:
            import uvloop
        except ImportError:  # a platform without it (Windows) runs on asyncio's own loop
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class Client:
    """The process's event loop (in a daemon thread) and its one aiohttp session."""

    def __init__(self) -> None:
        self.loop = new_event_loop()
        self._ready = threading.Event()
        self._session: aiohttp.ClientSession | None = None
        self.thread = threading.Thread(target=self._run, name="webhook-http", daemon=True)
        self.thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    @property
    def session(self) -> aiohttp.ClientSession:
        """Created on the loop, on first use (aiohttp binds a session to the running loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=settings.AGENTBOT_HTTP_CONNECTIONS,
                limit_per_host=0,  # per-webhook caps live in the engine, not per host
                resolver=PolicyResolver(),
                use_dns_cache=False,
                keepalive_timeout=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
                trust_env=False,  # no proxies or netrc from the environment
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def run(self, coroutine):
        """Run `coroutine` on the loop from another thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()


_CLIENT = PerProcess(Client)


def client() -> Client:
    """This process's client; a forked child (a Celery pool process) starts its own."""
    return _CLIENT.get()


async def _read_capped(response: aiohttp.ClientResponse, cap: int) -> bytes:
    chunks, size, content = [], 0, response.content
    while size < cap and not content.at_eof():
        chunk = await content.read(cap - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


@lru_cache(maxsize=64)
def _timeout(total: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total, connect=min(total, 10.0))


async def send(request: OutboundRequest) -> OutboundResult:
    """One request (a POST unless told) on the shared session; never raises, every failure is in `result.error`."""
    timeout = settings.AGENTBOT_HTTP_TIMEOUT if request.timeout is None else request.timeout
    cap = settings.AGENTBOT_RESPONSE_BODY_CAP if request.body_cap is None else request.body_cap
    started = time.monotonic()
    result = OutboundResult()
    try:
        # One parse: the URL object checked here is the one connected to (its host, if a name, is
        # resolved through PolicyResolver, so the addresses connected to are the ones checked).
        target = url_parse(request.url)
        await allowed_addresses(target)
        async with client().session.request(
            request.method,
            target.url,
            data=request.body,
            headers=request.headers,
            allow_redirects=False,
            timeout=_timeout(timeout),
            ssl=True if request.ssl is None else request.ssl,
        ) as response:
            result.status_code = response.status
            result.headers = dict(response.headers)
            result.body = await _read_capped(response, cap)
    except UrlNotAllowed as exc:
        result.error = f"refused: {exc}"
    except TimeoutError:
        reading = f" reading the response body (HTTP {result.status_code})" if result.status_code is not None else ""
        result.error = f"timed out after {timeout:g} s{reading}"
    except aiohttp.ClientConnectionError as exc:
        result.error = f"connection failed: {_short(exc)}"
    except (aiohttp.ClientError, ValueError) as exc:
        result.error = f"request failed: {_short(exc)}"
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def post(request: OutboundRequest) -> OutboundResult:
    """Send one request from synchronous code."""
    return client().run(send(request))
