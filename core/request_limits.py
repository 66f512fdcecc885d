"""Limits every request meets before any view: no control characters in its URL, and a body of at
most DATA_UPLOAD_MAX_MEMORY_SIZE bytes (1 MB), refused without being read to its end.

Django's ASGI handler reads a whole body (spooling it to disk) before any view or middleware can
look at its length, so the body limit is an ASGI wrapper around Django (agentbot/asgi.py): a
Content-Length over the limit is answered 413 before one byte is read, and a chunked body stops
being read at the byte that passes the limit. (Under WSGI, Django reads a body only when asked, and
the parsers read at most the limit.)
"""

import asyncio
import json
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.http import JsonResponse

_CONTROL = bytes(range(32)) + b"\x7f"


def error_body(path: str, error: str, message: str) -> dict:
    """An error in the shape of the URL's API: the connector endpoint (the inbound webhooks document) adds `"ok": false`."""
    if path.startswith("/api/webhook/"):
        return {"ok": False, "error": error, "message": message}
    return {"error": error, "message": message}


def _has_control(raw: bytes) -> bool:
    return any(byte in _CONTROL for byte in unquote_to_bytes(raw))


def refuse_control_characters(get_response):
    """Django middleware: a path or query string with a control character (`%00`, `%0a`, …) is a
    400 before any view runs; no id, search term or filter holds one, and PostgreSQL refuses NUL."""

    def middleware(request):
        path = request.META.get("PATH_INFO", "")
        if isinstance(path, str):
            path = path.encode("utf-8", "surrogateescape")
        query = request.META.get("QUERY_STRING", "").encode("latin-1", "replace")
        if any(ch in _CONTROL for ch in path) or _has_control(query):
            message = "the URL must not contain control characters (%00 to %1F, %7F)"
            return JsonResponse(error_body(request.path, "invalid_request", message), status=400)
        return get_response(request)

    return middleware


class _BodyTooLarge(Exception):
    pass


class _BodyTooSlow(Exception):
    pass


async def refuse_too_slow(scope, send, seconds: float) -> None:
    """The ASGI 408 for a body not received within `seconds`; the connection is closed."""
    message = f"the request body did not arrive within {seconds:g} s"
    body = json.dumps(error_body(scope.get("path", ""), "request_timeout", message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 408, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _too_large_body(path: str, limit: int) -> bytes:
    message = f"the request body must be at most {limit // 1024} KB"
    error = "too_large" if path.startswith("/api/webhook/") else "payload_too_large"  # each API's own code
    return json.dumps(error_body(path, error, message)).encode()


async def refuse_too_large(scope, send, limit: int) -> None:
    """The ASGI 413 for a body over `limit` bytes, in the shape of the URL's API."""
    body = _too_large_body(scope.get("path", ""), limit)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: HTTP request bodies over `limit` bytes are answered 413 unread, and one not
    received in full within AGENTBOT_WEB_BODY_TIMEOUT seconds 408 (a client that drips its body
    holds nothing for longer; the request headers' own timeout is agentbot/serving.py's)."""

    def __init__(self, app, limit: int | None = None):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit if self.limit is not None else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            return await refuse_too_large(scope, send, limit)
        received = 0
        started = False
        seconds = settings.AGENTBOT_WEB_BODY_TIMEOUT
        body_by: float | None = None  # the body's deadline, from the first read; None once it is whole

        async def limited_receive():
            nonlocal received, body_by
            if body_by is None and received == 0 and seconds > 0:
                body_by = asyncio.get_running_loop().time() + seconds
            if body_by is not None:
                try:
                    message = await asyncio.wait_for(receive(), max(body_by - asyncio.get_running_loop().time(), 0))
                except TimeoutError:
                    raise _BodyTooSlow from None
            else:
                message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
                if not message.get("more_body", False):
                    body_by, received = None, max(received, 1)  # whole: what comes next is the disconnect
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await refuse_too_large(scope, send, limit)
        except _BodyTooSlow:
            if not started:
                await refuse_too_slow(scope, send, seconds)
