"""The webhook channel's URLs:

    POST /chatbot/hooks/{botId}                                 the site's first instance
    POST /chatbot/hooks/{botId}/hookInstance/{webHookId}        any instance
    POST /chatbot/hooks/{botId}/poll/{pollId}                   v2 polling (GET works too)

Errors are JSON `{"error", "message"}`: 401 for a missing or refused JWT (the document's "Invalid
access token" when its userIdentity is not the payload's from.id), 403 for an inactive instance,
404 for an unknown bot, instance or poll, 400 naming the field of a bad payload.
"""

import logging

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from inbound.connectors.webhook_channel import services as webhook_services
from inbound.connectors.webhook_channel.auth import AuthError, bearer_token, jwt_claims, user_identity_matches
from inbound.models import ApiVersion, Integration
from inbound.parsed import PayloadError
from inbound.request_body import BodyRefused, json_object, request_body

logger = logging.getLogger(__name__)
INVALID_ACCESS_TOKEN = "Invalid access token"


class RequestRefused(Exception):
    """The channel's request cannot be served: carries the JSON error response to send back."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.response = JsonResponse({"error": error, "message": message}, status=status)


def _allowed(request, methods: tuple[str, ...]) -> None:
    if request.method not in methods:
        refused = RequestRefused(405, "method_not_allowed", f"{request.method} is not allowed here; use {' or '.join(methods)}")
        refused.response["Allow"] = ", ".join(methods)
        raise refused


def _claims(request, integration: Integration) -> dict:
    if not integration.active:
        raise RequestRefused(
            403, "channel_inactive", f"webhook channel instance {integration.id} is not enabled; enable it to receive messages"
        )
    try:
        return jwt_claims(integration=integration, authorization=request.headers.get("Authorization", ""))
    except AuthError as exc:
        raise RequestRefused(401, "invalid_token", str(exc)) from None


def _body(request) -> dict:
    try:
        return json_object(request_body(request))
    except BodyRefused as exc:
        raise RequestRefused(exc.status, exc.error, str(exc)) from None


def _respond(handler):
    @csrf_exempt
    def view(request, **kwargs):
        try:
            status, body = handler(request, **kwargs)
        except RequestRefused as refused:
            return refused.response
        except webhook_services.NotFound as exc:
            return JsonResponse({"error": "not_found", "message": str(exc)}, status=404)
        return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})

    return view


def _hook(request, bot_id: str, instance_id: str | None = None):
    _allowed(request, ("POST",))
    integration = webhook_services.instance_find(bot_id=bot_id, instance_id=instance_id)
    claims = _claims(request, integration)
    token = bearer_token(request.headers.get("Authorization", ""))
    try:
        parsed = webhook_services.request_admit(integration=integration, body=_body(request), claims=claims, token=token)
    except PayloadError as exc:
        raise RequestRefused(400, "invalid_payload", str(exc)) from None
    except webhook_services.UserRefused as exc:
        raise RequestRefused(401, "invalid_token", f"{INVALID_ACCESS_TOKEN}: {exc}") from None
    if parsed.kind == "status":
        answer = webhook_services.session_event_apply(integration=integration, parsed=parsed)
    else:
        answer = webhook_services.message_take(integration=integration, parsed=parsed)
    logger.info(
        "webhook channel request answered",
        extra={"integration_id": integration.id, "kind": parsed.kind, "status_code": answer.status},
    )
    return answer.status, answer.body


def _poll(request, bot_id: str, poll_id: str):
    _allowed(request, ("POST", "GET"))
    event = webhook_services.poll_event_find(bot_id=bot_id, poll_id=poll_id)
    integration = event.integration
    claims = _claims(request, integration)
    if integration.api_version != ApiVersion.V2:
        raise RequestRefused(400, "not_supported", "polling is a v2 feature; this channel instance speaks v1")
    if not user_identity_matches(claims=claims, user_id=event.payload.get("client_id", "")):
        raise RequestRefused(401, "invalid_token", f"{INVALID_ACCESS_TOKEN}: the token's userIdentity is not the poll's user")
    answer = webhook_services.poll_answer(event=event)
    return answer.status, answer.body


hook = _respond(_hook)
poll = _respond(_poll)
