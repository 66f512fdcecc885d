"""Django served from a fixed pool of threads inside the ASGI server (docs/configuration.md, "Serving").

Django's own ASGI handler starts a new thread for every request and adapts each sync middleware
and signal across the event loop; running Django's WSGI handler on AGENTBOT_WEB_THREADS long-lived
threads (a2wsgi) costs a publish about a fifth less CPU in the web process (bench/api.py), and the
threads are what bounds the requests a process works on at once. The body is read on the event
loop before a thread takes the request, as Django's ASGI handler does, so a client that sends
slowly holds a coroutine, not one of the few threads.
"""

from a2wsgi import WSGIMiddleware
from django.conf import settings
from django.core.wsgi import get_wsgi_application

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
