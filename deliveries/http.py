"""The one outbound HTTP client: pooled keep-alive sessions, bounded time, no redirects, capped
response bodies, and the URL policy checked again right before each request."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from subscriptions.url_policy import UrlNotAllowed, resolve_allowed

_local = threading.local()
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


@dataclass
class OutboundRequest:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass
class OutboundResult:
    status_code: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    duration_ms: int = 0
    error: str = ""


def session() -> requests.Session:
    """One keep-alive session per thread: requests.Session is not safe to share across threads."""
    s = getattr(_local, "session", None)
    if s is None:
        s = requests.Session()
        s.trust_env = False  # no proxies or netrc from the environment
        adapter = HTTPAdapter(pool_connections=32, pool_maxsize=8, max_retries=0)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        _local.session = s
    return s


def _read_capped(response: requests.Response, cap: int, deadline: float) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=8192):
        chunks.append(chunk)
        size += len(chunk)
        if size >= cap or time.monotonic() > deadline:
            break
    return b"".join(chunks)[:cap]


def post(request: OutboundRequest) -> OutboundResult:
    timeout = settings.AGENTBOT_HTTP_TIMEOUT
    started = time.monotonic()
    result = OutboundResult()
    try:
        resolve_allowed(request.url)
        with session().post(
            request.url,
            data=request.body,
            headers=request.headers,
            timeout=(min(timeout, 10.0), timeout),
            allow_redirects=False,
            stream=True,
        ) as response:
            result.status_code = response.status_code
            result.headers = dict(response.headers)
            result.body = _read_capped(response, settings.AGENTBOT_RESPONSE_BODY_CAP, started + timeout)
    except UrlNotAllowed as exc:
        result.error = f"refused: {exc}"
    except requests.Timeout:
        result.error = f"timed out after {timeout:g} s"
    except requests.ConnectionError as exc:
        result.error = f"connection failed: {_short(exc)}"
    except requests.RequestException as exc:
        result.error = f"request failed: {_short(exc)}"
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "…"


def post_many(batch: list[OutboundRequest]) -> list[OutboundResult]:
    """Send a batch concurrently; results in the batch's order."""
    if len(batch) <= 1:
        return [post(r) for r in batch]
    return list(_pool().map(post, batch))


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(
                    max_workers=settings.AGENTBOT_SEND_CONCURRENCY, thread_name_prefix="webhook-send"
                )
    return _executor
