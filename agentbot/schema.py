"""OpenAPI post-processing: every operation documents the errors it can answer with, and its request
and responses carry an example a reader can copy."""

from core.api.auth import HasSiteKey
from inbound.api import SCHEMA_EXAMPLES as INBOUND_EXAMPLES
from subscriptions.event_types import MESSAGE_CREATED

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "example": "invalid_request"},
        "message": {"type": "string", "example": "url: the URL must start with http:// or https://"},
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "example": {"url": ["the URL must start with http:// or https://"]},
        },
    },
}

ERRORS = {
    "400": "The request is not valid (a field the body may not hold, too); `message` says what to change.",
    "401": "No API key, or one that is unknown or revoked.",
    "404": "No such object on this API key's site, or a page past the last one.",
    "409": "The delivery is being sent right now.",
    "409-conversation": "The conversation is closed; start a new one.",
    "409-skip": "The delivery is being sent right now, or it is not pending.",
    "413": "The event data or the request body is too large.",
    "415": "The body is not JSON.",
    "429": "Too many requests with this API key (AGENTBOT_API_RATE), or with keys that are not valid from this "
    "address; the Retry-After header says how many seconds to wait.",
}

ERROR_EXAMPLES = {
    "400": {
        "error": "invalid_request",
        "message": "url: the URL must start with http:// or https://",
        "fields": {"url": ["the URL must start with http:// or https://"]},
    },
    "401": {"error": "not_authenticated", "message": HasSiteKey.message},
    "404": {"error": "not_found", "message": "no such object on this site"},
    "409": {"error": "conflict", "message": "this delivery is being sent right now; look again in a few seconds"},
    "409-skip": {"error": "conflict", "message": "this delivery is being sent right now; look again in a few seconds"},
    "409-conversation": {
        "error": "conflict",
        "message": "conversation conv_01khx3a0x2z4b6d8f0h2k4m6p8 is closed; start a new one with POST /api/v1/conversations",
    },
    "413": {
        "error": "payload_too_large",
        "message": "data is 300012 bytes once serialised; the limit is 262144 bytes (256 KB)",
    },
    "415": {"error": "unsupported_media_type", "message": 'Unsupported media type "text/plain" in request.'},
    "429": {"error": "throttled", "message": "Request was throttled. Expected available in 1 second."},
}

# --- examples of the resources, by the name of their component schema ---------------------------
AT = "2026-01-15T09:30:00Z"
WEBHOOK_ID, EVENT_ID, DELIVERY_ID = (
    "wh_01khx3c8k2m4n6p8q0r2s4t6v8",
    "evt_01khx3d2a4c6e8g0j2l4n6q8s0",
    "dlv_01khx3d2b5d7f9h1k3m5p7r9t1",
)
CONVERSATION_ID = "conv_01khx3a0x2z4b6d8f0h2k4m6p8"

WEBHOOK_INPUT = {
    "url": "https://crm.example.com/hooks/agentbot",
    "events": ["message.created", "conversation.needs_human"],
    "format": "agentbot",
    "description": "CRM bridge",
    "enabled": True,
}
WEBHOOK = {
    "id": WEBHOOK_ID,
    **WEBHOOK_INPUT,
    "exchange": "",
    "routing_key": "",
    "ordering": "none",
    "state": "active",
    "waiting_deliveries": None,
    "secret_hint": "whsec_…Qx8c",
    "previous_secret_expires_at": None,
    "disabled_reason": "",
    "disabled_at": None,
    "headers": {"X-Tenant": "acme"},
    "auth": {"type": "basic", "username": "agentbot"},
    "tls_client_cert_set": False,
    "tls_ca_cert_set": False,
    "filter": {"channel": {"$in": ["whatsapp", "telegram"]}},
    "rate_limit": {"per_second": 20},
    "rate_limited_until": None,
    "created_at": AT,
    "updated_at": AT,
}
ATTEMPTS = [
    {
        "number": 1,
        "at": "2026-01-15T09:30:01Z",
        "status_code": 503,
        "response_body": "Service Unavailable",
        "duration_ms": 112,
        "error": "HTTP 503",
    },
    {
        "number": 2,
        "at": "2026-01-15T09:31:01Z",
        "status_code": 200,
        "response_body": '{"ok":true}',
        "duration_ms": 48,
        "error": "",
    },
]
DELIVERY = {
    "id": DELIVERY_ID,
    "event": EVENT_ID,
    "event_type": MESSAGE_CREATED.name,
    "webhook": WEBHOOK_ID,
    "status": "succeeded",
    "attempt_count": 2,
    "next_attempt_at": None,
    "last_attempt_at": "2026-01-15T09:31:01Z",
    "last_status_code": 200,
    "last_error": "",
    "ordering_key": CONVERSATION_ID,
    "waiting_behind": None,
    "created_at": AT,
    "attempts": ATTEMPTS,
}
EVENT_INPUT = {
    "event": MESSAGE_CREATED.name,
    "data": MESSAGE_CREATED.example,
    "idempotency_key": "msg_123",
    "ordering_key": CONVERSATION_ID,
}
EVENT = {
    "id": EVENT_ID,
    "event": MESSAGE_CREATED.name,
    "data": MESSAGE_CREATED.example,
    "idempotency_key": "msg_123",
    "ordering_key": CONVERSATION_ID,
    "created_at": AT,
    "deliveries": [{"id": DELIVERY_ID, "webhook": WEBHOOK_ID, "status": "pending", "attempt_count": 0, "next_attempt_at": AT}],
    "deliveries_count": 1,
    "deliveries_next": None,
}
VISITOR = {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0958"}
CONVERSATION_INPUT = {"channel": "web", "visitor": VISITOR, "page_url": "https://shop.example.com/pricing"}
CONVERSATION = {
    "id": CONVERSATION_ID,
    "number": 42,
    **CONVERSATION_INPUT,
    "status": "open",
    "source": {},
    "needs_human_at": None,
    "handoff_reason": "",
    "created_at": AT,
    "closed_at": None,
}
MESSAGE_INPUT = {"sender_type": "visitor", "body": "Hi, what's your pricing?"}
TICKET_INPUT = {
    "conversation_id": CONVERSATION_ID,
    "subject": "Refund for order 1042",
    "status": "open",
    "priority": "high",
    "assignee": "sam@example.com",
}
CONTACT_INPUT = {
    "conversation_id": CONVERSATION_ID,
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "phone": "+44 20 7946 0958",
    "content": "Please call me about the team plan",
    "uri": "https://shop.example.com/pricing",
}

EXAMPLES = {
    # requests
    "WebhookInputRequest": WEBHOOK_INPUT,
    "PatchedWebhookPatchRequest": {"enabled": False},
    "RotateInputRequest": {"grace_seconds": 3600},
    "FilterTestInputRequest": {
        "data": {"channel": "whatsapp", "body": "Hi"},
        "filter": {"channel": {"$in": ["whatsapp", "telegram"]}},
    },
    "FilterTestOutput": {"matches": True, "filter": {"channel": {"$in": ["whatsapp", "telegram"]}}},
    "EventInputRequest": EVENT_INPUT,
    "ConversationInputRequest": CONVERSATION_INPUT,
    "MessageInputRequest": MESSAGE_INPUT,
    "HandoffInputRequest": {"reason": "The visitor asks for a refund"},
    "TicketInputRequest": TICKET_INPUT,
    "PatchedTicketPatchRequest": {"status": "solved"},
    "ContactInputRequest": CONTACT_INPUT,
    # responses
    "Webhook": WEBHOOK,
    "WebhookWithSecret": {**WEBHOOK, "secret": "whsec_MfKQ9r8GKYqrTxaYJ2l8sUt5Yw1pQx8c"},
    "Delivery": DELIVERY,
    "Event": EVENT,
    "EventType": {
        "name": MESSAGE_CREATED.name,
        "description": MESSAGE_CREATED.description,
        "schema": MESSAGE_CREATED.schema,
        "example": MESSAGE_CREATED.example,
    },
    "TestSent": {"event_id": EVENT_ID, "delivery_id": DELIVERY_ID},
    "Conversation": CONVERSATION,
    "Message": {"id": "msg_01khx3b1y3a5c7e9g1j3l5n7q9", "conversation_id": CONVERSATION_ID, **MESSAGE_INPUT, "created_at": AT},
    "Ticket": {"id": "tkt_01khx3b9z1b3d5f7h9k1m3p5r7", **TICKET_INPUT, "created_at": AT, "updated_at": AT},
    "Lead": {"id": "lead_01khx3c0a2c4e6g8j0l2n4q6s8", **CONTACT_INPUT, "created_at": AT},
    "Appointment": {"id": "apt_01khx3c0a2c4e6g8j0l2n4q6s9", **CONTACT_INPUT, "created_at": AT},
    **INBOUND_EXAMPLES,
}
CONVERSATION_ACTIONS = "/api/v1/conversations/{"
PAGINATED_PREFIX, PAGINATED_SUFFIX = "Paginated", "List"


def example_of(ref: str | None):
    """The example for a `#/components/schemas/<name>` reference; a page of one for a paginated list."""
    name = (ref or "").rsplit("/", 1)[-1]
    if name in EXAMPLES:
        return EXAMPLES[name]
    item = name.removeprefix(PAGINATED_PREFIX).removesuffix(PAGINATED_SUFFIX)
    if name.startswith(PAGINATED_PREFIX) and item in EXAMPLES:
        return {"count": 1, "next": None, "previous": None, "results": [EXAMPLES[item]]}
    return None


def _with_example(media: dict, example) -> None:
    own = media.get("examples", {})
    if len(own) == 1:
        # The view documents this one itself (as an error only it answers); OpenAPI takes either
        # `example` or `examples`, and the rest of the document uses `example`.
        media["example"] = next(iter(media.pop("examples").values()))["value"]
    elif example is not None and not own:
        media.setdefault("example", example)


def _error(code: str) -> dict:
    return {
        "description": ERRORS[code],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}, "example": ERROR_EXAMPLES[code]}},
    }


def _error_codes(path: str, method: str, operation: dict) -> list[str]:
    codes = ["401", "429"] if operation.get("security") != [{}] else []
    pages = any(p.get("name") == "page" for p in operation.get("parameters", []))
    if "{" in path or pages:
        codes.append("404")
    if method in ("post", "patch", "put") or operation.get("parameters"):
        codes.append("400")
    if method in ("post", "patch", "put"):
        codes.append("415")
    if path.endswith("/retry"):
        codes.append("409")
    if path.endswith("/skip"):
        codes.append("409-skip")
    if path.startswith(CONVERSATION_ACTIONS) and path.endswith(("/messages", "/handoff", "/resume")):
        codes.append("409-conversation")
    if method in ("post", "patch", "put"):
        codes.append("413")
    return codes


def add_error_responses(result, generator, request, public):
    """Error responses with examples on every operation, and examples for request and responses."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in _error_codes(path, method, operation):
                responses.setdefault(code.split("-")[0], _error(code))
            for media in operation.get("requestBody", {}).get("content", {}).values():
                _with_example(media, example_of(media.get("schema", {}).get("$ref")))
            for response in responses.values():
                for media in response.get("content", {}).values():
                    _with_example(media, example_of(media.get("schema", {}).get("$ref")))
    return result


def _closed(node, components: dict, seen: set[str]) -> None:
    """`additionalProperties: false` on every object with named properties that `node` reaches."""
    if isinstance(node, list):
        for item in node:
            _closed(item, components, seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[-1]
        if name not in seen:
            seen.add(name)
            _closed(components.get(name), components, seen)
        return
    if "properties" in node:
        node.setdefault("additionalProperties", False)
        _closed(list(node["properties"].values()), components, seen)
    for key in ("items", "allOf", "oneOf", "anyOf"):
        _closed(node.get(key), components, seen)


def refuse_unknown_request_fields(result, generator, request, public):
    """Request bodies are closed objects, as core.api.serializers.StrictSerializer enforces: a
    field a request body's schema does not list is refused. A free-form value (an event's `data`) is
    an object without named properties and stays open."""
    components = result.get("components", {}).get("schemas", {})
    seen: set[str] = set()
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                _closed(media.get("schema"), components, seen)
    return result


def defaults_beside_alternatives(result, generator, request, public):
    """drf-spectacular renders a blank-allowed email as `oneOf: [{format: email, default: ""},
    {maxLength: 0}]`: a default inside a branch it does not match, which schema validators refuse
    (`'' is not a 'email'`). The default belongs beside the alternatives, where "" matches one."""

    def walk(node):
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for alternative in node.get("oneOf", []):
                if isinstance(alternative, dict) and "default" in alternative:
                    node.setdefault("default", alternative.pop("default"))
            for value in node.values():
                walk(value)

    walk(result.get("components", {}))
    return result


def patch_bodies_name_a_field(result, generator, request, public):
    """A PATCH changes the fields it sends and needs at least one (core.api.serializers.
    PatchSerializer): its body is required and names a field. (Its properties carry no default:
    PatchSerializer drops them, and tests/agentbot/test_schema_docs.py checks every PATCH.)"""
    components = result.get("components", {}).get("schemas", {})
    for operations in result.get("paths", {}).values():
        operation = operations.get("patch")
        if not operation or "requestBody" not in operation:
            continue
        operation["requestBody"]["required"] = True
        for media in operation["requestBody"].get("content", {}).values():
            ref = media.get("schema", {}).get("$ref", "")
            body = components.get(ref.rsplit("/", 1)[-1]) if ref else media.get("schema")
            if body and body.get("properties"):
                body["minProperties"] = 1
    return result


def _ref_name(node: dict | None) -> str:
    return ((node or {}).get("$ref") or "").rsplit("/", 1)[-1]


def _json_schema(container: dict) -> dict | None:
    return container.get("content", {}).get("application/json", {}).get("schema")


def read_only_and_write_once_fields(result, generator, request, public):
    """Which fields of a resource a client may set, said on the resource's response components:
    a field no request body of its collection takes is `readOnly`; one the create takes but the
    PATCH does not is set once, when created (its description says so); the rest are writable.
    (A response serializer lists its fields as read-only for its own reasons: that is not what a
    client needs to know.)"""
    components = result.get("components", {}).get("schemas", {})
    collections: dict[str, dict] = {}
    for path, operations in result.get("paths", {}).items():
        for method in ("post", "patch"):
            operation = operations.get(method)
            if not operation or "requestBody" not in operation:
                continue
            collection = path if method == "post" else path.rsplit("/", 1)[0]
            if method == "post" and path.rsplit("/", 1)[-1].startswith("{"):
                continue
            entry = collections.setdefault(collection, {"post": set(), "patch": None, "responses": set()})
            body = components.get(_ref_name(_json_schema(operation["requestBody"])), {})
            names = set(body.get("properties", {}))
            if method == "post":
                entry["post"] |= names
            else:
                entry["patch"] = (entry["patch"] or set()) | names
            for code, response in operation.get("responses", {}).items():
                if code.startswith("2") and _ref_name(_json_schema(response)):
                    entry["responses"].add(_ref_name(_json_schema(response)))
    for entry in collections.values():
        # A collection without a PATCH (conversations, leads) is not changed after its create.
        if entry["patch"] is None:
            continue
        writable = entry["post"] | entry["patch"]
        for name in entry["responses"]:
            for field, prop in components.get(name, {}).get("properties", {}).items():
                if field not in writable:
                    prop["readOnly"] = True
                    continue
                prop.pop("readOnly", None)
                if field not in entry["patch"]:
                    note = "Set when created; a PATCH cannot change it."
                    prop["description"] = f"{prop['description']} {note}" if prop.get("description") else note
    return result
