"""Django served from a fixed pool of threads inside the ASGI server (docs/configuration.md, "Serving").

Django's own ASGI handler starts a new thread for every request and adapts each sync middleware
and signal across the event loop; running Django's WSGI handler on AGENTBOT_WEB_THREADS long-lived
threads (a2wsgi) costs a publish about a fifth less CPU in the web process (bench/api.py), and the
threads are what bounds the requests a process works on at once. The body is read on the event
loop before a thread takes the request, as Django's ASGI handler does, so a client that sends
slowly holds a coroutine, not one of the few threads.
"""

import asyncio

import h11
from a2wsgi import WSGIMiddleware
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from uvicorn.protocols.http.h11_impl import H11Protocol

from core.request_limits import refuse_too_large


def body_cap() -> int:
    """The largest body read for Django: above DATA_UPLOAD_MAX_MEMORY_SIZE, so that Django's own
    limits and their messages decide, but not unbounded."""
    return max(4 * 1024 * 1024, 2 * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0))


class BufferedBody:
    """ASGI middleware: the whole request body first, then the app, with the body in one message."""

    def __init__(self, app, cap: int) -> None:
        self.app = app
        self.cap = cap

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.cap:
                return await refuse_too_large(scope, send, self.cap)
            chunks.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)


def django_in_threads(threads: int):
    """Django's WSGI application on `threads` threads, as an ASGI application."""
    return BufferedBody(WSGIMiddleware(get_wsgi_application(), workers=threads), body_cap())


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's headers: a connection whose
    request line and headers have not all arrived within AGENTBOT_WEB_HEADER_TIMEOUT seconds (of
    its opening, or of the previous response) is answered 408 and closed. uvicorn has no such
    timeout: a client sending a header byte now and then held its connection for good. `agentbot
    serve` runs uvicorn with `--http agentbot.serving:HeaderTimeoutH11Protocol` (docs/limits.md)."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_deadline_set()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are in (or the protocol switched)
            self._header_deadline_clear()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._header_deadline_set()  # the next request's headers, on a kept-alive connection

    def connection_lost(self, exc) -> None:
        self._header_deadline_clear()
        super().connection_lost(exc)

    def _header_deadline_set(self) -> None:
        self._header_deadline_clear()
        seconds = settings.AGENTBOT_WEB_HEADER_TIMEOUT
        if seconds > 0:
            self._header_timer = self.loop.call_later(seconds, self._header_deadline_passed)

    def _header_deadline_clear(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.our_state is h11.IDLE and self.conn.their_state is h11.IDLE and self.cycle is None:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 33\r\nconnection: close\r\n\r\nthe request headers came too slow"
