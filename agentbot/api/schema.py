"""OpenAPI post-processing: every operation documents the errors it can answer with."""

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
    "400": "The request is not valid; `message` says what to change.",
    "401": "No API key, or one that is unknown or revoked.",
    "404": "No such object on this API key's site, or a page past the last one.",
    "409": "The delivery is being sent right now.",
    "413": "The event data or the request body is too large.",
    "415": "The body is not JSON.",
}


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            codes = ["401"] if operation.get("security") != [{}] else []
            pages = any(p.get("name") == "page" for p in operation.get("parameters", []))
            if "{" in path or pages:
                codes.append("404")
            if method in ("post", "patch", "put") or operation.get("parameters"):
                codes.append("400")
            if method in ("post", "patch", "put"):
                codes.append("415")
            if path.endswith("/retry"):
                codes.append("409")
            if method in ("post", "patch", "put"):
                codes.append("413")
            responses = operation.setdefault("responses", {})
            for code in codes:
                responses.setdefault(code, _error(ERRORS[code]))
    return result
