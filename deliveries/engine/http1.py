"""The outbound client's HTTP/1.1: keep-alive connections on asyncio protocols, responses read by
httptools (llhttp, the parser of Node.js and of uvicorn here), one request at a time per connection.

What a webhook request needs and no more: a POST (or another method) with a body of bytes, the
response's status, headers and at most `cap` bytes of its body, no redirects, no cookies, no
proxies, no compression. Per request it costs the event loop about half of what an aiohttp session
did (`bench/engine_http.py`), and the engine's loop is what one worker process's sending is bound by.

A connection goes back to the pool only when its response was read to the end and both sides keep
it alive; anything else (a body past the cap, a parse error, a timeout, `Connection: close`) closes
it. A request is never sent twice: a pooled connection the server closed while it was being reused
fails the attempt as aiohttp did (RFC 9112 §9.3.1: no automatic retry of a POST), and the delivery's
schedule sends it again.
"""

import asyncio
import os
import socket
import ssl
import time
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address

import aiohappyeyeballs
import httptools

# A receiver's status line and headers together; more is a hostile or broken receiver.
MAX_HEAD = 64 * 1024
# A receiver that says `Keep-Alive: timeout=N` (Node.js: 5 s) closes an idle connection after N
# seconds; one is not reused within this margin of that, so no request meets the close on its way.
KEEPALIVE_MARGIN = 1.0
# Seconds before the next address of a host is tried alongside (RFC 8305's, as aiohttp's).
HAPPY_EYEBALLS_DELAY = 0.25
# What every request says besides the caller's headers (aiohttp sent the same Accept).
ACCEPT = b"Accept: */*\r\n"
# Headers only the client writes: how the message is framed and where it goes.
OWN_HEADERS = frozenset({"content-length", "host", "transfer-encoding", "connection"})


class ConnectError(ConnectionError):
    """No connection to any address of the host (refused, unreachable, TLS handshake failed)."""


class ResponseError(Exception):
    """The connection closed or the receiver answered something that is not HTTP/1.1."""


@lru_cache(maxsize=1)
def default_tls() -> ssl.SSLContext:
    """Certificates verified against the system's CAs, host names checked (what ssl=True meant)."""
    return ssl.create_default_context()


def _forbidden(text: str) -> bool:
    return "\r" in text or "\n" in text or "\x00" in text


@lru_cache(maxsize=4096)
def _start(method: str, target: str, host_header: str) -> bytes:
    """The request line and Host, per method, path and host (few distinct ones per process)."""
    if _forbidden(method) or " " in method or _forbidden(target) or " " in target:
        raise ValueError("the request line must not contain spaces or line breaks")
    return f"{method} {target} HTTP/1.1\r\nHost: {host_header}\r\n".encode("latin-1")


def encode_request(method: str, target: str, host_header: str, headers: dict[str, str], body: bytes) -> bytes:
    """The request's bytes: a header value with a line break or NUL is refused (ValueError), never sent."""
    lines = [_start(method, target, host_header), ACCEPT]
    for name, value in headers.items():
        value = str(value)
        if _forbidden(name) or _forbidden(value) or ":" in name:
            raise ValueError(f"the header {name!r} has a line break, NUL or colon where it must not")
        lowered = name.lower()
        if lowered in OWN_HEADERS:
            continue  # the client's own
        if lowered == "accept":
            lines[1] = b""  # the caller's Accept instead of ours
        lines.append(f"{name}: {value}\r\n".encode())
    lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
    lines.append(body)
    return b"".join(lines)


class Response:
    """A response as it is read: `done` resolves (to this) when it is, or fails."""

    __slots__ = ("done", "status", "headers", "body", "size", "complete")

    def __init__(self, done: asyncio.Future) -> None:
        self.done = done
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.complete = False


class Connection(asyncio.Protocol):
    """One connection: a request written, its response parsed; reusable when both sides keep alive."""

    def __init__(self, key: tuple) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_until = 0.0  # when idle in the pool: time.monotonic() after which it is not reused
        self.server_keepalive = float("inf")  # the receiver's Keep-Alive timeout less a second
        self._waiter: asyncio.Future | None = None
        self._response: Response | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._cap = 0
        self._head = 0  # bytes received before the headers completed
        self._informational = False
        self._until_close = False

    # --- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self._response
        if self._waiter is None or self._waiter.done() or response is None:
            return
        if response.status is not None and self._until_close:
            self._finish(keep_alive=False)  # a body without length or chunks ends with the connection
        elif response.status is not None:
            self._fail(ResponseError("the receiver closed the connection before the response body was complete"))
        else:
            self._fail(ResponseError("the receiver closed the connection without answering"))

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: this connection is not reused
            return
        if self._response.status is None:  # still in the status line and headers: bounded
            end = data.find(b"\r\n\r\n")
            self._head += len(data) if end < 0 else end + 4
            if self._head > MAX_HEAD:
                self._fail(ResponseError(f"the response's status line and headers exceed {MAX_HEAD // 1024} KiB"))
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ResponseError("the receiver switched protocols"))
        except httptools.HttpParserError as exc:
            # After a complete response too (bytes past its end): the connection is not reused.
            self._fail(ResponseError(f"the response is not valid HTTP/1.1 ({_reason(exc)})"))

    # --- httptools callbacks -----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._informational:
            # Decoded as aiohttp did: UTF-8, a byte that is not UTF-8 kept as a lone surrogate
            # (the recorder makes it storable). A repeated header keeps its first value, as
            # dict() of aiohttp's headers did.
            self._response.headers.setdefault(name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue, 103 Early Hints: the response comes after them
            self._informational = True
            return
        response = self._response
        response.status = status
        lowered = {name.lower(): value for name, value in response.headers.items()}
        self._until_close = "content-length" not in lowered and "chunked" not in lowered.get("transfer-encoding", "").lower()
        if "keep-alive" in lowered:
            self.server_keepalive = _keepalive_timeout(lowered["keep-alive"]) - KEEPALIVE_MARGIN

    def on_body(self, body: bytes) -> None:
        response = self._response
        if response.complete:
            return
        room = self._cap - response.size
        if len(body) > room:
            if room > 0:
                response.body.append(body[:room])
                response.size += room
            self._finish(keep_alive=False)  # the rest is not read: the connection is not reused
            return
        response.body.append(body)
        response.size += len(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            self._response.headers = {}
            return
        if not self._response.complete:
            self._finish(keep_alive=self._parser.should_keep_alive())

    # --- the client's side -------------------------------------------------------------------
    def request(self, data: bytes, cap: int) -> Response:
        """Write one request; its response's `done` resolves when the response is read."""
        self._waiter = asyncio.get_running_loop().create_future()
        self._response = Response(self._waiter)
        self._parser = httptools.HttpResponseParser(self)
        self._cap, self._head, self._informational, self._until_close = cap, 0, False, False
        if self.closed:
            self._fail(ResponseError("the receiver closed the connection without answering"))
        else:
            self.transport.write(data)
        return self._response

    def _finish(self, keep_alive: bool) -> None:
        self._response.complete = True
        if not keep_alive:
            self.close()
        if not self._waiter.done():
            self._waiter.set_result(self._response)

    def _fail(self, exc: Exception) -> None:
        self.close()
        if not self._waiter.done():
            self._waiter.set_exception(exc)

    def reusable(self) -> bool:
        response = self._response
        return not self.closed and response is not None and response.complete and not self.transport.is_closing()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _keepalive_timeout(value: str) -> float:
    """`timeout=5, max=100` → 5.0; infinity when the header names no timeout we can read."""
    for part in value.split(","):
        name, _, number = part.strip().partition("=")
        if name.strip().lower() == "timeout":
            try:
                return float(number.strip())
            except ValueError:
                break
    return float("inf")


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


class Pool:
    """Idle keep-alive connections by (scheme, host, port, TLS context), most recent first, closed
    after `keepalive` seconds unused (or sooner, a second before the receiver's own Keep-Alive
    timeout); at most `limit` connections in use at once (0: no limit)."""

    def __init__(self, limit: int, keepalive: float = 30.0) -> None:
        self.keepalive = keepalive
        self.idle: dict[tuple, list[Connection]] = {}
        self._slots = asyncio.Semaphore(limit) if limit > 0 else None
        self._sweeping: asyncio.TimerHandle | None = None

    async def acquire(self) -> None:
        if self._slots is not None:
            await self._slots.acquire()

    def release_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    def take(self, key: tuple) -> Connection | None:
        idle = self.idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and not conn.transport.is_closing() and now < conn.idle_until:
                return conn
            conn.close()
        return None

    def put(self, conn: Connection) -> None:
        if not conn.reusable():
            conn.close()
            return
        keep = min(self.keepalive, conn.server_keepalive)
        if keep <= 0:
            conn.close()
            return
        conn.idle_until = time.monotonic() + keep
        self.idle.setdefault(conn.key, []).append(conn)
        if self._sweeping is None:
            self._sweeping = asyncio.get_running_loop().call_later(self.keepalive / 2, self._sweep)

    def _sweep(self) -> None:
        """Close connections idle for longer than `keepalive`; runs while any are idle."""
        self._sweeping = None
        now = time.monotonic()
        for key, conns in list(self.idle.items()):
            kept = []
            for conn in conns:
                if not conn.closed and conn.idle_until > now:
                    kept.append(conn)
                else:
                    conn.close()
            if kept:
                self.idle[key] = kept
            else:
                del self.idle[key]
        if self.idle:
            self._sweeping = asyncio.get_running_loop().call_later(self.keepalive / 2, self._sweep)

    def close(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                conn.close()
        self.idle.clear()


async def connect(
    key: tuple, addresses: list[IPv4Address | IPv6Address], port: int, tls: ssl.SSLContext | None, server_hostname: str
) -> Connection:
    """A new connection to the addresses the URL policy allowed, and only those: tried as aiohttp
    did (aiohappyeyeballs, RFC 8305: the next address after 0.25 s), then TLS if `tls`."""
    where = ", ".join(_where(address, port) for address in addresses)
    infos = [
        (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (str(a), port, 0, 0))
        if a.version == 6
        else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (str(a), port))
        for a in addresses
    ]
    try:
        sock = await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY)
    except OSError as exc:
        raise ConnectError(f"{os.strerror(exc.errno) if exc.errno else _reason(exc)} ({where})") from None
    conn = Connection(key)
    try:
        await asyncio.get_running_loop().create_connection(
            lambda: conn, sock=sock, ssl=tls, server_hostname=server_hostname if tls is not None else None
        )
    except ssl.SSLError as exc:
        sock.close()
        raise ConnectError(f"TLS with {server_hostname} ({where}) failed: {_reason(exc)}") from None
    except BaseException:
        sock.close()
        raise
    return conn


def _where(address: IPv4Address | IPv6Address, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
