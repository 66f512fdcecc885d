"""An MkDocs hook: the REST API reference, rendered at build time from the live OpenAPI schema.

`manage.py spectacular` writes the schema the service serves at /api/v1/schema; this hook turns it
into one Markdown page, `api/reference.md` (every operation: its parameters, body, answers, and
every schema's fields), and puts the schema itself beside it as `api/openapi.json`. Both are
generated in memory (mkdocs.yml's `hooks:`), never written into docs/, so `mkdocs serve` does not
rebuild in a loop and the reference can never lag the code. Nothing is fetched: it runs offline.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("get", "post", "put", "patch", "delete")
REFERENCE_URI = "api/reference.md"
# The groups of operations, in the order a newcomer needs them; a group not named here follows, by name.
GROUPS = {
    "webhooks": "Webhooks",
    "events": "Events",
    "deliveries": "Deliveries",
    "event-types": "Event types",
    "conversations": "Conversations",
    "tickets": "Tickets",
    "leads": "Leads",
    "appointments": "Appointments",
    "integrations": "Integrations",
    "knowledge": "Knowledge base",
}
SCHEMA_URI = "api/openapi.json"


def schema_generate() -> dict:
    """The schema as `manage.py spectacular` writes it (the same generator as /api/v1/schema)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--format", "openapi-json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py spectacular failed:\n{done.stderr}")
    return json.loads(done.stdout)


def operation_anchor(method: str, path: str) -> str:
    return "op-" + method + "-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def schema_anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def cell(text: object) -> str:
    """Text that stays inside one table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def type_describe(schema: dict) -> str:
    """A short, linked description of a schema's type: `string (uri)`, `array of [Webhook](…)`."""
    if not schema:
        return "any"
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{schema_anchor(name)})"
    for combinator, joiner in (("allOf", " and "), ("oneOf", " or "), ("anyOf", " or ")):
        if combinator in schema:
            text = joiner.join(type_describe(part) for part in schema[combinator])
            return text + (" or null" if schema.get("nullable") else "")
    kind = schema.get("type", "object")
    if kind == "array":
        text = "array of " + type_describe(schema.get("items", {}))
    elif kind == "object" and "additionalProperties" in schema and not schema.get("properties"):
        extra = schema["additionalProperties"]
        text = "object of " + type_describe(extra) if isinstance(extra, dict) and extra else "object"
    else:
        text = kind + (f" ({schema['format']})" if "format" in schema else "")
    return text + (" or null" if schema.get("nullable") else "")


def constraints_describe(schema: dict) -> str:
    """What a value must be beyond its type: enums, lengths, ranges, patterns, defaults."""
    found = []
    if "enum" in schema:
        found.append("one of " + ", ".join(f"`{value}`" for value in schema["enum"] if value is not None))
    for key, label in (
        ("minLength", "at least {} characters"),
        ("maxLength", "at most {} characters"),
        ("minimum", "≥ {}"),
        ("maximum", "≤ {}"),
        ("minItems", "at least {} items"),
        ("maxItems", "at most {} items"),
    ):
        if key in schema:
            found.append(label.format(schema[key]))
    if "pattern" in schema:
        found.append(f"matches `{schema['pattern']}`")
    if "default" in schema:
        found.append(f"default `{json.dumps(schema['default'], ensure_ascii=False)}`")
    if schema.get("readOnly"):
        found.append("read-only")
    if schema.get("writeOnly"):
        found.append("write-only")
    return "; ".join(found)


def body_schema(content: dict) -> tuple[str, dict] | None:
    for media_type, spec in content.items():
        return media_type, spec.get("schema", {})
    return None


def example_render(title: str, content: dict) -> list[str]:
    """The schema's example of a body, as a JSON block (nothing when it has none)."""
    for spec in content.values():
        if "example" in spec:
            text = json.dumps(spec["example"], indent=2, ensure_ascii=False)
            return [f"{title}:", "", "```json", text, "```", ""]
    return []


def operation_render(method: str, path: str, operation: dict) -> list[str]:
    lines = [f"### `{method.upper()} {path}` {{ #{operation_anchor(method, path)} }}", ""]
    if operation.get("summary"):
        lines += [operation["summary"].strip() + ("" if operation["summary"].strip().endswith(".") else "."), ""]
    if operation.get("description"):
        lines += [operation["description"].strip(), ""]
    if not operation.get("security", [{}]) or operation.get("security") == [{}]:
        lines += ["No API key needed.", ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["| parameter | in | type | required | notes |", "|---|---|---|---|---|"]
        for parameter in parameters:
            schema = parameter.get("schema", {})
            notes = "; ".join(filter(None, [parameter.get("description", ""), constraints_describe(schema)]))
            lines.append(
                f"| `{parameter['name']}` | {parameter['in']} | {cell(type_describe(schema))} | "
                f"{'yes' if parameter.get('required') else 'no'} | {cell(notes)} |"
            )
        lines.append("")
    request = operation.get("requestBody")
    if request:
        found = body_schema(request.get("content", {}))
        if found:
            media_type, schema = found
            required = "required" if request.get("required") else "optional"
            lines += [f"**Body** ({required}, `{media_type}`): {type_describe(schema)}", ""]
            lines += example_render("Example", request.get("content", {}))
    lines += ["| answer | body | meaning |", "|---|---|---|"]
    for status, response in sorted(operation.get("responses", {}).items()):
        found = body_schema(response.get("content", {}))
        body = type_describe(found[1]) if found else "—"
        lines.append(f"| {status} | {cell(body)} | {cell(response.get('description', ''))} |")
    lines.append("")
    success = [response for status, response in sorted(operation.get("responses", {}).items()) if status.startswith("2")]
    if success:
        lines += example_render("An answer", success[0].get("content", {}))
    return lines


def component_render(name: str, schema: dict) -> list[str]:
    lines = [f"### {name} {{ #{schema_anchor(name)} }}", ""]
    if schema.get("description"):
        lines += [schema["description"].strip(), ""]
    properties = schema.get("properties")
    if properties:
        required = set(schema.get("required", []))
        lines += ["| field | type | required | notes |", "|---|---|---|---|"]
        for field, spec in properties.items():
            notes = "; ".join(filter(None, [spec.get("description", ""), constraints_describe(spec)]))
            lines.append(f"| `{field}` | {cell(type_describe(spec))} | {'yes' if field in required else 'no'} | {cell(notes)} |")
        lines.append("")
        if schema.get("additionalProperties") is False:
            lines += ["No other field is accepted.", ""]
    else:
        described = constraints_describe(schema)
        lines += [
            f"{type_describe({k: v for k, v in schema.items() if k != 'description'})}" + (f": {described}" if described else ""),
            "",
        ]
    return lines


def group_of(path: str) -> str:
    """`/api/v1/webhooks/{id}/test` → `webhooks`; the inbound and helper URLs by their own first part."""
    parts = [part for part in path.strip("/").split("/") if part]
    if parts[:2] == ["api", "v1"]:
        parts = parts[2:]
    elif parts[:1] == ["api"]:
        parts = parts[1:]
    return parts[0] if parts else "other"


def reference_markdown(schema: dict) -> str:
    info = schema.get("info", {})
    lines = [
        "# REST API reference",
        "",
        f"{info.get('title', 'The API')} {info.get('version', '')}, OpenAPI {schema.get('openapi', '')}. "
        "This page is generated from the live schema every time the docs are built "
        "(`manage.py spectacular`); the running service serves the same schema at `/api/v1/schema` "
        "and an interactive view of it at `/api/v1/docs`. "
        f"Download it: [openapi.json](openapi.json). How to call the API: [Using the REST API](index.md).",
        "",
        "Every operation takes `Authorization: Bearer <api key>` unless it says otherwise.",
        "",
    ]
    groups: dict[str, list[tuple[str, str, dict]]] = {}
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                groups.setdefault(group_of(path), []).append((method, path, item[method]))
    order = [name for name in GROUPS if name in groups] + sorted(name for name in groups if name not in GROUPS)
    for group in order:
        lines += [f"## {GROUPS.get(group, group.capitalize())}", ""]
        operations = groups[group]
        for method, path, operation in operations:
            lines += operation_render(method, path, operation)
    lines += ["## Schemas", ""]
    for name, component in sorted(schema.get("components", {}).get("schemas", {}).items()):
        lines += component_render(name, component)
    return "\n".join(lines) + "\n"


def on_files(files, config):  # noqa: ANN001 - MkDocs' hook signature
    from mkdocs.structure.files import File

    schema = schema_generate()
    files.append(File.generated(config, REFERENCE_URI, content=reference_markdown(schema)))
    files.append(File.generated(config, SCHEMA_URI, content=json.dumps(schema, indent=2, ensure_ascii=False)))
    return files
