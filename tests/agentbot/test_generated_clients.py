"""Clients generated from the live /api/v1/schema (Python by openapi-python-client; TypeScript by
openapi-typescript and openapi-fetch, run by Node) used against the running service: for every
PATCH operation the schema lists, create the object, find it in the list, change each field alone
(every other field stays as it was) and delete it.

Nothing here names a resource or a field: they come from the schema, so an operation or a field
added later is covered by the same test."""

import json
import re
from pathlib import Path

import pytest
import requests

from core.services import api_key_create
from subscriptions.models import Webhook
from tests.factories import SiteFactory
from tests.support.asgi_server import AsgiServer
from tests.support.generated_clients import PythonClient, TypeScriptClient

pytestmark = pytest.mark.django_db(transaction=True)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "clients.md"
CANDIDATE_TEXT = ["changed by the client", "https://changed.example.com/hooks/client", "changed@example.com"]


@pytest.fixture
def live(tmp_path):
    server = AsgiServer(tmp_path)
    yield server
    server.stop()


def resolved(node: dict, components: dict) -> dict:
    while "$ref" in node:
        node = components[node["$ref"].rsplit("/", 1)[-1]]
    if "allOf" in node and len(node["allOf"]) == 1:
        return resolved(node["allOf"][0], components)
    return node


def other_value(name: str, prop: dict, current, components: dict):
    """A value for `prop` that differs from `current` and that its schema admits; None if none."""
    prop = resolved(prop, components)
    if "enum" in prop:
        return next((v for v in prop["enum"] if v not in (current, None, "")), None)
    kind = prop.get("type")
    if kind == "boolean":
        return not current
    if kind == "integer":
        value = (current or 0) + 1
        return value if value <= prop.get("maximum", value) else prop.get("minimum", 0)
    if kind == "array":
        items = resolved(prop.get("items", {}), components)
        if "enum" in items:
            choices = [v for v in items["enum"] if v != "*"]
            return next(([v] for v in choices if [v] != current), None)
        item = other_value(name, items, None, components)
        return None if item is None else [item]
    if kind == "string":
        candidates = [f"{name} {CANDIDATE_TEXT[0]}", *CANDIDATE_TEXT[1:]]
        if prop.get("format") == "email" or "email" in name:
            candidates.insert(0, "changed@example.com")
        if prop.get("format") == "uri" or name.endswith("url") or name.endswith("origins"):
            candidates.insert(0, "https://changed.example.com/hooks/client")
        for text in candidates:
            if text != current and (not prop.get("pattern") or re.search(prop["pattern"], text)):
                return text[: prop.get("maxLength", len(text))]
    return None


def request_schema(schema: dict, method: str, path: str) -> dict:
    body = schema["paths"][path][method]["requestBody"]["content"]["application/json"]
    return body, resolved(body["schema"], schema["components"]["schemas"])


def create(call, schema: dict, collection: str) -> tuple[dict, dict]:
    """The object a POST on `collection` makes from the schema's example, with every field that has
    a default set to something else (so a PATCH that sent defaults would show); a field the server
    refuses that way goes back to the example. Returns the object and the body that made it."""
    components = schema["components"]["schemas"]
    media, body_schema = request_schema(schema, "post", collection)
    example = dict(media["example"])
    body = dict(example)
    for name, prop in body_schema["properties"].items():
        if "default" in resolved(prop, components) or "default" in prop:
            value = other_value(name, prop, body.get(name, prop.get("default")), components)
            if value is not None:
                body[name] = value
    if "conversation_id" in body:
        status, conversation = call("post", "/api/v1/conversations", None, {"channel": "web"})
        assert status == 201, conversation
        body["conversation_id"] = example["conversation_id"] = conversation["id"]
    for _ in range(len(body) + 1):
        status, created = call("post", collection, None, body)
        if status == 201:
            return created, body
        assert status == 400 and created.get("fields"), (collection, body, created)
        for name in created["fields"]:
            body.pop(name, None)
            if name in example:
                body[name] = example[name]
    raise AssertionError(f"POST {collection} refused every body: {created}")


def differences(before: dict, after: dict) -> set[str]:
    return {k for k in before.keys() | after.keys() if k != "updated_at" and before.get(k) != after.get(k)}


def patch_each_field(call, by_hand, schema: dict, path: str) -> None:
    """`call` is the generated client; `by_hand` sends the bodies as written (the reference: the
    server is right for hand-written bodies). A twin object made by hand from the same body gets
    each PATCH by hand too, and both objects must change in the same fields."""
    components = schema["components"]["schemas"]
    collection, id_param = path.rsplit("/", 1)[0], path.rsplit("{", 1)[1].rstrip("}")
    operations = schema["paths"][collection]
    created, body = create(call, schema, collection)
    params = {id_param: created["id"]}
    status, twin = by_hand("post", collection, None, body)
    assert status == 201, twin
    twin_params = {id_param: twin["id"]}

    if "get" in operations:
        status, page = call("get", collection, None, None)
        assert status == 200 and created["id"] in [item["id"] for item in page["results"]], page

    _, settable = request_schema(schema, "patch", path)
    before, accepted, refused = created, [], {}
    for name, prop in settable["properties"].items():
        value = other_value(name, prop, before.get(name), components)
        if value is None:
            continue
        status, after = call("patch", path, params, {name: value})
        twin_status, twin_after = by_hand("patch", path, twin_params, {name: value})
        assert status == twin_status, (path, name, after, twin_after)
        if status == 400:  # a rule across fields (routing_key for amqp URLs only, a connector's own settings)
            refused[name] = after["message"]
            continue
        assert status == 200, (path, name, after)
        changed = sorted(other for other in settable["properties"] if other != name and before.get(other) != after.get(other))
        assert not changed, f"PATCH {path} {{{name!r}}} also changed {changed}: {before} → {after}"
        assert differences(before, after) == differences(twin, twin_after), (path, name, before, after, twin, twin_after)
        if name in after:
            assert after[name] == value, (name, value, after[name])
        before, twin, accepted = after, twin_after, [*accepted, name]
    assert accepted, f"PATCH {path} accepted no field alone: {refused}"

    if "delete" in schema["paths"][path]:
        assert call("delete", path, params, None)[0] == 204
        if "get" in schema["paths"][path]:
            assert call("get", path, params, None)[0] == 404


def hand_written(base_url: str, key: str):
    def call(method: str, path: str, params: dict | None, body: dict | None):
        url = base_url + path.format(**(params or {}))
        response = requests.request(method, url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        return response.status_code, (response.json() if response.content else None)

    return call


@pytest.mark.e2e
@pytest.mark.parametrize("client_class", [PythonClient, TypeScriptClient], ids=["python", "typescript"])
def test_a_generated_client_creates_lists_patches_one_field_and_deletes(live, client_class):
    _, key = api_key_create(site=SiteFactory())
    schema_text = requests.get(f"{live.url}/api/v1/schema", headers={"Accept": "application/json"}, timeout=10).text
    client = client_class(schema_text, live.url, key)
    try:
        schema = json.loads(schema_text)
        patches = [path for path, operations in schema["paths"].items() if "patch" in operations]
        assert patches
        for path in patches:
            patch_each_field(client.call, hand_written(live.url, key), schema, path)
    finally:
        client.close()


def docs_example(language: str, url: str, key: str) -> str:
    """docs/clients.md's example in `language`, pointed at the test's service and key."""
    (code,) = re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), re.S)
    return code.replace("http://127.0.0.1:8000", url).replace("abk_…", key)


@pytest.mark.e2e
def test_the_examples_in_docs_clients_run_as_written(live):
    site = SiteFactory()
    _, key = api_key_create(site=site)
    schema_text = requests.get(f"{live.url}/api/v1/schema", headers={"Accept": "application/json"}, timeout=10).text

    PythonClient(schema_text, live.url, key)  # generates the package the example imports
    namespace: dict = {}
    exec(compile(docs_example("python", live.url, key), str(DOCS), "exec"), namespace)  # noqa: S102 - our own docs
    webhook = Webhook.objects.get(pk=namespace["created"].id)
    assert webhook.description == "CRM bridge", "the PATCH set the description"
    assert webhook.enabled is False and webhook.events == ["message.created"], "and changed nothing else"
    assert namespace["page"].count == 1

    typescript = TypeScriptClient(schema_text, live.url, key)
    try:
        code = docs_example("typescript", live.url, key).replace('"./agentbot.js"', '"./schema.js"')
        code += "console.log(JSON.stringify({ id: webhook!.id, count: page!.count }));\n"
        printed = json.loads(typescript.run_program("docs_example", code))
    finally:
        typescript.close()
    made = Webhook.objects.get(pk=printed["id"])
    assert made.description == "CRM bridge" and made.events == ["message.created"] and made.enabled is True
    assert printed["count"] == 2
