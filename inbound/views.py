"""`POST|GET /api/webhook/{connectorType}/{integrationId}` (seed 000).

Answers as the seed's table says: 200 `{"ok": true}` when the webhook is stored (or ignored),
401 for a missing or wrong signature, 403 for an inactive integration, 404 for an unknown
connector or integration. The answer never waits for the agent: a worker processes what is stored.
"""

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from core import jsonlimits
from inbound import chat2desk, services
from inbound.models import ConnectorType, Integration

logger = logging.getLogger(__name__)

SIGNATURE_HEADERS = ("x-webhook-signature", "x-hub-signature-256")
# The connectors that receive HTTP webhooks here (webchat talks over Socket.IO instead).
WEBHOOK_CONNECTORS = {ConnectorType.CHAT2DESK: chat2desk.parse}
MAX_BODY = 1024 * 1024


def refuse(status: int, error: str, message: str) -> JsonResponse:
    return JsonResponse({"ok": False, "error": error, "message": message}, status=status)


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


@csrf_exempt
def connector_webhook(request, connector_type: str, integration_id: str):
    if request.method not in ("GET", "POST"):
        response = refuse(405, "method_not_allowed", f"{request.method} is not allowed: POST a webhook, or GET to verify the URL")
        response["Allow"] = "GET, POST"
        return response
    parse = WEBHOOK_CONNECTORS.get(connector_type)
    if parse is None:
        known = ", ".join(WEBHOOK_CONNECTORS)
        return refuse(404, "unknown_connector", f"there is no webhook connector {connector_type!r}; known: {known}")
    integration = (
        Integration.objects.select_related("site").filter(pk=integration_id, connector_type=connector_type).first()
    )
    if integration is None:
        return refuse(404, "integration_not_found", f"there is no {connector_type} integration {integration_id}")
    if request.method == "GET":
        return JsonResponse({"ok": True, "verified": True})
    if not integration.active:
        return refuse(403, "integration_inactive", f"integration {integration.id} is not active; activate it to receive webhooks")
    if not integration.webhook_secret:
        return refuse(
            401,
            "secret_not_configured",
            f"integration {integration.id} has no webhook secret, so no webhook can be verified; rotate its secret and configure it on the platform",
        )
    try:
        body = request_body(request)
    except BodyRefused as exc:
        return refuse(exc.status, exc.error, str(exc))
    signatures = [request.headers[h] for h in SIGNATURE_HEADERS if h in request.headers]
    if not signatures:
        return refuse(401, "missing_signature", "sign the raw body: x-webhook-signature: sha256=<hex HMAC-SHA256>")
    if not any(services.signature_valid(secret=integration.webhook_secret, body=body, signature=s) for s in signatures):
        return refuse(401, "invalid_signature", "the signature does not match the body and the integration's webhook secret")
    try:
        payload = json_object(body)
    except BodyRefused as exc:
        return refuse(exc.status, exc.error, str(exc))
    try:
        parsed = parse(payload)
    except chat2desk.PayloadError as exc:
        return refuse(400, "invalid_payload", str(exc))
    event = services.inbound_receive(integration=integration, parsed=parsed, body=body)
    logger.info(
        "inbound webhook stored",
        extra={"integration_id": integration.id, "inbound_event_id": event.id, "kind": event.kind, "status": event.status},
    )
    return JsonResponse({"ok": True})
