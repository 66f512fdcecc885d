"""The connectors' webhook endpoint, `POST|GET /api/webhook/{connectorType}/{integrationId}`.

One view for every connector that receives HTTP webhooks signed with the integration's webhook
secret (`WEBHOOK_CONNECTORS`: today Chat2Desk); each connector's package gives only its parser.

Answers as the document's table says: 200 `{"ok": true}` when the webhook is stored (or ignored),
401 for a missing or wrong signature, 403 for an inactive integration, 404 for an unknown
connector or integration. The answer never waits for the agent: a worker processes what is stored.
"""

import hashlib
import hmac
import logging

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from inbound import services
from inbound.connectors.chat2desk.parse import parse as chat2desk_parse
from inbound.models import ConnectorType, Integration
from inbound.parsed import PayloadError
from inbound.request_body import BodyRefused, json_object, request_body

logger = logging.getLogger(__name__)

SIGNATURE_HEADERS = ("x-webhook-signature", "x-hub-signature-256")
# The connectors that receive HTTP webhooks here (webchat talks over Socket.IO instead).
WEBHOOK_CONNECTORS = {ConnectorType.CHAT2DESK: chat2desk_parse}


def refuse(status: int, error: str, message: str) -> JsonResponse:
    return JsonResponse({"ok": False, "error": error, "message": message}, status=status)


def signature_valid(*, secret: str, body: bytes, signature: str) -> bool:
    """`signature` is `sha256=<hex HMAC-SHA256(secret, body)>` (the prefix may be left out)."""
    received = signature.strip()
    if received.startswith("sha256="):
        received = received[len("sha256=") :]
    try:
        digest = bytes.fromhex(received)
    except ValueError:
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return hmac.compare_digest(expected, digest)


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
    integration = Integration.objects.select_related("site").filter(pk=integration_id, connector_type=connector_type).first()
    if integration is None:
        return refuse(404, "integration_not_found", f"there is no {connector_type} integration {integration_id}")
    if not integration.active:
        return refuse(403, "integration_inactive", f"integration {integration.id} is not active; activate it to receive webhooks")
    if request.method == "GET":
        return JsonResponse({"ok": True, "verified": True})
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
    if not any(signature_valid(secret=integration.webhook_secret, body=body, signature=s) for s in signatures):
        return refuse(401, "invalid_signature", "the signature does not match the body and the integration's webhook secret")
    try:
        payload = json_object(body)
    except BodyRefused as exc:
        return refuse(exc.status, exc.error, str(exc))
    try:
        parsed = parse(payload, request_id=request.headers.get("X-Request-Id", ""))
    except PayloadError as exc:
        return refuse(400, "invalid_payload", str(exc))
    event = services.inbound_receive(integration=integration, parsed=parsed, body=body)
    logger.info(
        "inbound webhook stored",
        extra={"integration_id": integration.id, "inbound_event_id": event.id, "kind": event.kind, "status": event.status},
    )
    return JsonResponse({"ok": True})
