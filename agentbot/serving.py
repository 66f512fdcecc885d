"""Django served from a fixed pool of threads inside the ASGI server (docs/configuration.md, "Serving").

Django's own ASGI handler starts a new thread for every request and adapts each sync middleware
and signal across the event loop; running Django's WSGI handler on AGENTBOT_WEB_THREADS long-lived
threads (a2wsgi) costs a publish about a fifth less CPU in the web process (bench/api.py), and the
threads are what bounds the requests a process works on at once. The body is read on the event
loop before a thread takes the request, as Django's ASGI handler does, so a client that sends
slowly holds a coroutine, not one of the few threads.
"""

import asyncio
import contextvars
import io

from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import build_environ
from django.conf import settings
from django.core import signals
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIRequest
from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse
from django.http.request import split_domain_port, validate_host
from django.urls import resolve, reverse
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.log import log_response
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.api.errors import DatabaseUnavailableMiddleware, database_unavailable
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
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay(whole, receive), send)


def django_in_threads(threads: int):
    """Django's WSGI application on `threads` threads, as an ASGI application, with the plain
    `POST /api/v1/events` served on the same threads below Django's request cycle (PlainPublish)."""
    django = WSGIMiddleware(get_wsgi_application(), workers=threads)
    return BufferedBody(PlainPublish(django, django.executor), body_cap())


# The middleware PlainPublish answers for, by hand (_as_django_answers): with any other list, or
# settings that make one of them answer differently (plain_publish_supported), Django serves
# every request itself.
MIDDLEWARE_MIRRORED = [
    "core.request_limits.refuse_control_characters",  # the path is fixed; a query string goes to Django
    "django.middleware.security.SecurityMiddleware",  # its headers; no redirect, no HSTS (checked)
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files only
    "core.cookies.partitioned_cookies",  # a response without cookies
    "django.contrib.sessions.middleware.SessionMiddleware",  # a request with a cookie goes to Django
    "django.middleware.locale.LocaleMiddleware",  # Vary and Content-Language
    "django.middleware.common.CommonMiddleware",  # Content-Length; the host checked as get_host() does
    "django.middleware.csrf.CsrfViewMiddleware",  # the view is csrf_exempt
    "django.contrib.auth.middleware.AuthenticationMiddleware",  # lazy: the view does not read it
    "django.contrib.messages.middleware.MessageMiddleware",  # nothing stored
    "django.middleware.clickjacking.XFrameOptionsMiddleware",  # X-Frame-Options
    "core.api.errors.DatabaseUnavailableMiddleware",  # its 503, redone in PlainPublish._serve
]


def plain_publish_supported() -> bool:
    """Whether PlainPublish's answers are the ones Django's request cycle would give with these
    settings (tests/deliveries/test_api.py compares the two)."""
    from django.conf.urls.i18n import is_language_prefix_patterns_used

    from deliveries.api import event_publish_endpoint

    return (
        list(settings.MIDDLEWARE) == MIDDLEWARE_MIRRORED
        and not settings.SECURE_SSL_REDIRECT
        and not settings.SECURE_HSTS_SECONDS
        and not settings.PREPEND_WWW
        and not settings.DISALLOWED_USER_AGENTS
        and not is_language_prefix_patterns_used(settings.ROOT_URLCONF)[0]
        and resolve(reverse("event-publish")).func is event_publish_endpoint
    )


class PlainPublish:
    """ASGI: a plain `POST /api/v1/events` (no query string, no cookie, a Content-Length, one of
    each header the publish reads) is published on Django's threads without Django's request
    cycle: no WSGI environ, request, middleware chain, URL resolving, or a2wsgi's three hops back
    to the event loop, which cost the web process about as much CPU as the publish itself
    (bench/PROFILE.md). It is deliveries.api.publish_plain, the function Django's view calls
    first, with the same key check, rate limit, parser, checks and rendering; whatever it does
    not take (it returns None before storing anything) goes on to Django, so every refusal is
    still EventPublishView's. What Django does around a view is redone here: the request signals
    (the database connection goes back to the pool at request_finished, as after any request),
    the headers the middleware adds (the same bytes: tests/deliveries/test_api.py), the host
    check, the 503 of a database that is unavailable, and Django's own answer (500, logged) to
    any other error."""

    def __init__(self, app, executor) -> None:
        self.app = app
        self.executor = executor
        self.path = reverse("event-publish")
        self.enabled = plain_publish_supported()
        self._languages: dict[bytes, str] = {}
        self._headers: dict[str, list[tuple[bytes, bytes]]] = {}

    async def __call__(self, scope, receive, send) -> None:
        if not (self.enabled and scope["type"] == "http" and scope["method"] == "POST" and not scope["query_string"]):
            return await self.app(scope, receive, send)
        root = scope.get("root_path", "")
        if scope["path"] != root + self.path:  # (a2wsgi's PATH_INFO is the path after root_path)
            return await self.app(scope, receive, send)
        headers = _headers_once(scope["headers"])
        message = await receive()  # BufferedBody's one message, the whole body
        body = message.get("body", b"")
        if headers is None or message["type"] != "http.request" or headers.get(b"content-length") != str(len(body)).encode():
            return await self.app(scope, _replay(message, receive), send)
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(self.executor, context.run, self._serve, scope, headers, body)
        if answer is None:
            return await self.app(scope, _replay(message, receive), send)
        status, response_headers, content = answer
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": content})

    def _serve(self, scope, headers: dict[bytes, bytes], body: bytes):
        """On one of Django's threads: (status, headers, body), or None for Django to answer."""
        from deliveries.api import PUBLISH_ALLOW, publish_plain

        if not self._host_allowed(headers):
            return None  # Django's 400
        language = self._language(headers.get(b"accept-language", b""))
        signals.request_started.send(sender=self.__class__, scope=scope)
        try:
            answer = publish_plain(
                content_type=headers.get(b"content-type", b"").decode("latin-1"),
                authorization=headers.get(b"authorization", b"").decode("latin-1"),
                length=headers[b"content-length"].decode("latin-1"),
                body=lambda: body,
            )
            if answer is None:
                return None
            status, content = answer
            template = self._headers.get(language)
            if template is None:
                response = HttpResponse(b"", content_type="application/json")
                response["Allow"] = PUBLISH_ALLOW
                template = self._headers[language] = _as_django_answers(response, language)
            response_headers = [
                (name, str(len(content)).encode() if name == b"content-length" else value) for name, value in template
            ]
            return status, response_headers, content
        except Exception as exc:  # Django's answer to an error in the view (nothing was stored: the transaction is over)
            request = WSGIRequest(build_environ(scope, io.BytesIO(body)))
            if database_unavailable(exc):
                response = DatabaseUnavailableMiddleware(None).process_exception(request, exc)
                log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
            else:
                response = response_for_exception(request, exc)
            return response.status_code, _as_django_answers(response, language), response.content
        finally:
            signals.request_finished.send(sender=self.__class__)

    def _host_allowed(self, headers: dict[bytes, bytes]) -> bool:
        """What HttpRequest.get_host() lets through (CommonMiddleware calls it on every request)."""
        if settings.USE_X_FORWARDED_HOST and b"x-forwarded-host" in headers:
            return False  # left to Django
        host = headers.get(b"host")
        if host is None:
            return False
        allowed = settings.ALLOWED_HOSTS
        if settings.DEBUG and not allowed:
            allowed = [".localhost", "127.0.0.1", "[::1]"]
        domain, _ = split_domain_port(host.decode("latin-1"))
        return bool(domain) and validate_host(domain, allowed)

    def _language(self, accept: bytes) -> str:
        """LocaleMiddleware's language for a request without cookies, by Accept-Language."""
        language = self._languages.get(accept)
        if language is None:
            language = translation.get_language_from_request(_LanguageOnly(accept.decode("latin-1")))
            if len(self._languages) >= 256:
                self._languages.clear()
            self._languages[accept] = language
        return language


class _LanguageOnly:
    """What translation.get_language_from_request reads of a request without cookies."""

    COOKIES: dict = {}

    def __init__(self, accept: str) -> None:
        self.META = {"HTTP_ACCEPT_LANGUAGE": accept} if accept else {}


# The request headers the plain publish reads; one sent twice goes to Django, which joins them.
_READ = frozenset([b"content-type", b"authorization", b"content-length", b"host", b"x-forwarded-host", b"accept-language"])


def _headers_once(raw) -> dict[bytes, bytes] | None:
    """The request's headers by name, or None when Django must see it: a cookie (the session's,
    the CSRF token's or the language's could each change the answer), or a header the publish
    reads sent more than once."""
    headers: dict[bytes, bytes] = {}
    for name, value in raw:
        if name == b"cookie" or (name in headers and name in _READ):
            return None
        headers[name] = value
    if b"content-length" not in headers or b"transfer-encoding" in headers:
        return None
    return headers


def _replay(message, receive):
    """An ASGI `receive` that gives `message` first, then what `receive` gives (the disconnect,
    when it comes)."""
    replayed = False

    async def again():
        nonlocal replayed
        if not replayed:
            replayed = True
            return message
        return await receive()

    return again


def _as_django_answers(response: HttpResponse, language: str) -> list[tuple[bytes, bytes]]:
    """`response`'s headers once MIDDLEWARE_MIRRORED has seen it, in the order and the bytes
    Django's WSGI handler and a2wsgi give them: XFrameOptionsMiddleware, CommonMiddleware,
    LocaleMiddleware, then SecurityMiddleware (process_response runs from the last middleware
    to the first)."""
    if response.get("X-Frame-Options") is None and not getattr(response, "xframe_options_exempt", False):
        response.headers["X-Frame-Options"] = getattr(settings, "X_FRAME_OPTIONS", "DENY").upper()
    if not response.streaming and not response.has_header("Content-Length"):
        response.headers["Content-Length"] = str(len(response.content))
    patch_vary_headers(response, ("Accept-Language",))
    response.headers.setdefault("Content-Language", language)
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
    policy = settings.SECURE_REFERRER_POLICY
    if policy:
        joined = ",".join([v.strip() for v in policy.split(",")] if isinstance(policy, str) else policy)
        response.headers.setdefault("Referrer-Policy", joined)
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        response.headers.setdefault("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY)
    items = [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())]
    return [(name.strip().encode("latin1").lower(), value.strip().encode("latin1")) for name, value in items]


class HeaderTimeoutHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (its C parser: about half the event loop's CPU per request of
    h11's, bench/PROFILE.md) with a deadline for each request's line and headers: a connection
    whose request headers have not all arrived within AGENTBOT_WEB_HEADER_TIMEOUT seconds (of its
    opening, or of the previous response) is answered 408 and closed. uvicorn has no such timeout:
    a client sending a header byte now and then held its connection for good. What `agentbot
    serve` runs (docs/limits.md)."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_deadline_set()

    def on_headers_complete(self) -> None:
        self._header_deadline_clear()  # the headers are in (or the protocol switches)
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
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
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return  # a request whose headers are in: its body has its own timeout (core/request_limits.py)
        self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 33\r\nconnection: close\r\n\r\nthe request headers came too slow"
