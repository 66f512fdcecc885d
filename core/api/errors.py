"""Every API error is JSON with a message a person can act on: `{"error", "message", "fields"?}`."""

import logging
import sys

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.api.auth import HasSiteKey
from core.errors import Refused

logger = logging.getLogger(__name__)

# Seconds a client is asked to wait when the database cannot be reached (Retry-After).
DATABASE_RETRY_AFTER = 5
DATABASE_UNAVAILABLE = {
    "error": "database_unavailable",
    "message": f"the service cannot reach its database right now; try again in {DATABASE_RETRY_AFTER} seconds "
    "(a publish with the same idempotency_key is never stored twice)",
}


def database_unavailable(exc: BaseException | None) -> bool:
    """The database refused, dropped or could not lend a connection (psycopg's pool timed out)."""
    return isinstance(exc, (OperationalError, InterfaceError))


def _log_unavailable(exc: BaseException) -> None:
    logger.warning("database unavailable: %s: %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")


def database_unavailable_response() -> JsonResponse:
    response = JsonResponse(DATABASE_UNAVAILABLE, status=503)
    response["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return response


class DatabaseUnavailableMiddleware:
    """A view outside the REST API (admin, health, inbound hooks) whose database is unreachable
    answers 503 with Retry-After, as the API does, instead of a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if database_unavailable(exception):
            _log_unavailable(exception)
            return database_unavailable_response()
        return None


def _flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"field.sub": ["message", …]}."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = str(key) if key != "non_field_errors" else ""
            out.update(_flatten(value, f"{prefix}.{name}" if prefix and name else prefix or name))
        return out
    if isinstance(detail, list):
        if all(not isinstance(v, (dict, list)) for v in detail):
            return {prefix: [str(v) for v in detail]}
        out = {}
        for index, value in enumerate(detail):
            out.update(_flatten(value, f"{prefix}[{index}]"))
        return out
    return {prefix: [str(detail)]}


def _validation_body(fields: dict[str, list[str]]) -> dict:
    first_field, messages = next(iter(fields.items()))
    # Fields refused for the same reason (several unknown ones, say) are all named in the message.
    same = [name for name, said in fields.items() if name and said[0] == messages[0]]
    message = f"{', '.join(same)}: {messages[0]}" if first_field else messages[0]
    return {"error": "invalid_request", "message": message, "fields": fields}


def _validation_response(fields: dict[str, list[str]]) -> Response:
    return Response(_validation_body(fields), status=status.HTTP_400_BAD_REQUEST)


def refusal(exc: Refused | exceptions.ValidationError) -> tuple[int, dict]:
    """The status and body the API answers `exc` with, for an answer that holds several (a batch's
    items each say what a request of their own would have been told)."""
    if isinstance(exc, exceptions.ValidationError):
        return status.HTTP_400_BAD_REQUEST, _validation_body(_flatten(exc.detail) or {"": ["the request is not valid"]})
    return exc.status_code, {"error": exc.code, "message": str(exc)}


def exception_handler(exc, context):
    if database_unavailable(exc):
        _log_unavailable(exc)
        return Response(DATABASE_UNAVAILABLE, status=503, headers={"Retry-After": str(DATABASE_RETRY_AFTER)})
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
        return _validation_response(fields)
    if isinstance(exc, Refused):
        return Response({"error": exc.code, "message": str(exc)}, status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"error": "payload_too_large", "message": "the request body is larger than 1 MB"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, exceptions.NotAuthenticated):
        exc = exceptions.NotAuthenticated(HasSiteKey.message)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("no such object on this site")
    if isinstance(exc, exceptions.ValidationError):
        return _validation_response(_flatten(exc.detail) or {"": ["the request is not valid"]})
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data.get("detail", response.data) if isinstance(response.data, dict) else response.data
    code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
    response.data = {"error": str(code), "message": str(detail)}
    return response


def json_not_found(request, exception=None):
    """Also the answer for an id outside the id grammar (core/ids.py): no URL matches it."""
    message = f"nothing at {request.path}"
    if request.path.startswith("/api/webhook/"):  # the connector endpoint's shape (the inbound webhooks document)
        message += "; the URL is /api/webhook/{connectorType}/{integrationId}, as in /api/webhook/chat2desk/intg_01jd5…"
        return JsonResponse({"ok": False, "error": "not_found", "message": message}, status=404)
    return JsonResponse({"error": "not_found", "message": message}, status=404)


def json_server_error(request):
    # Also what a middleware's unhandled exception ends in (DEBUG off): a database that is down is a 503.
    if database_unavailable(sys.exc_info()[1]):
        return database_unavailable_response()
    return JsonResponse({"error": "server_error", "message": "something went wrong on our side"}, status=500)
