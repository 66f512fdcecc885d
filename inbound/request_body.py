"""A platform's request body, read under the same limits for every connector's views: at most
MAX_BODY bytes, and a JSON object under core/jsonlimits.py's limits."""

from django.core.exceptions import RequestDataTooBig

from core import jsonlimits

MAX_BODY = 1024 * 1024


class BodyRefused(Exception):
    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status, self.error = status, error


def request_body(request) -> bytes:
    """The raw body; BodyRefused when its Content-Length is not a number or over MAX_BODY."""
    length = request.headers.get("Content-Length") or "0"
    if not length.isdigit():
        raise BodyRefused(400, "invalid_request", "Content-Length must be a number of bytes")
    try:
        if int(length) > MAX_BODY:
            raise RequestDataTooBig
        return request.body
    except RequestDataTooBig:
        raise BodyRefused(413, "too_large", f"the body must be at most {MAX_BODY // 1024} KB") from None


def json_object(raw: bytes) -> dict:
    """The body as a JSON object under core/jsonlimits.py's limits (UTF-8 without a BOM, at
    most MAX_DEPTH deep, finite numbers); BodyRefused (400) naming what is wrong otherwise."""
    try:
        payload = jsonlimits.loads(raw)
    except jsonlimits.JsonRefused as exc:
        raise BodyRefused(400, "invalid_json", str(exc)) from None
    if not isinstance(payload, dict):
        raise BodyRefused(400, "invalid_payload", "the body must be a JSON object")
    return payload
