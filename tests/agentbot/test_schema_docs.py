"""The OpenAPI schema documents every endpoint with a summary, examples and its errors; the docs page
needs nothing from the internet."""

import re

import jsonschema
import pytest

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def schema():
    from rest_framework.test import APIClient

    response = APIClient().get("/api/v1/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for path, items in schema["paths"].items():
        for method, operation in items.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def json_media(operation):
    """(where, media type object) of the request body and every response with a JSON body."""
    for media in operation.get("requestBody", {}).get("content", {}).values():
        yield "request", media
    for code, response in operation["responses"].items():
        for media in response.get("content", {}).values():
            yield code, media


def as_json_schema(node):
    """OpenAPI 3.0's `nullable: true` as JSON Schema's null type, everywhere in `node`."""
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: as_json_schema(value) for key, value in node.items() if key != "nullable"}
    return {"anyOf": [converted, {"type": "null"}]} if node.get("nullable") else converted


def test_every_operation_has_a_summary_and_examples_for_its_request_and_responses(schema):
    missing = []
    for name, operation in operations(schema):
        if not operation.get("summary"):
            missing.append(f"{name}: summary")
        for where, media in json_media(operation):
            if "example" not in media and "examples" not in media:
                missing.append(f"{name} {where}: example")
    assert not missing, "\n".join(missing)


def test_every_operation_documents_its_errors_with_an_example(schema):
    for name, operation in operations(schema):
        errors = {code: r for code, r in operation["responses"].items() if code.startswith("4")}
        assert "400" in errors or "401" in errors, name
        for code, response in errors.items():
            media = response["content"]["application/json"]
            assert media["schema"] == {"$ref": "#/components/schemas/Error"}, (name, code)
            assert set(media["example"]) >= {"error", "message"}, (name, code)
    retry = schema["paths"]["/api/v1/deliveries/{delivery_id}/retry"]["post"]["responses"]
    assert retry["409"]["content"]["application/json"]["example"]["error"] == "conflict"


def test_every_example_matches_its_own_schema(schema):
    components = as_json_schema(schema["components"])
    for name, operation in operations(schema):
        for where, media in json_media(operation):
            if "$ref" not in media.get("schema", {}):
                continue
            validator = jsonschema.Draft202012Validator({"$ref": media["schema"]["$ref"], "components": components})
            errors = [e.message for e in validator.iter_errors(media["example"])]
            assert not errors, f"{name} {where}: {errors}"


@pytest.mark.django_db
def test_docs_page_loads_only_local_static_files(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert urls, "the docs page links no assets at all"
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{url} is not served by this service"
        assert client.get(url).status_code == 200, url
    assert not re.search(r"https?://(?!127\.0\.0\.1|localhost)", html), "the docs page refers to another host"


def test_schema_is_a_valid_openapi_document_for_integrators_tools(schema):
    from openapi_spec_validator import validate

    validate(schema)  # raises, naming the place, on anything an OpenAPI tool would refuse
    visitor_email = schema["components"]["schemas"]["VisitorInputRequest"]["properties"]["email"]
    assert visitor_email["default"] == "" and all("default" not in branch for branch in visitor_email["oneOf"])


def _defaults(node, components, where, seen):
    """Where `node` (and every schema it reaches) gives a `default`."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _defaults(item, components, f"{where}[{i}]", seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref", "")
    if ref.startswith("#/components/schemas/") and ref not in seen:
        seen.add(ref)
        yield from _defaults(components[ref.rsplit("/", 1)[-1]], components, ref, seen)
    if "default" in node:
        yield f"{where}: default {node['default']!r}"
    for key in ("properties", "items", "allOf", "oneOf", "anyOf", "additionalProperties"):
        value = node.get(key)
        if key == "properties" and isinstance(value, dict):
            for name, prop in value.items():
                yield from _defaults(prop, components, f"{where}.{name}", seen)
        elif isinstance(value, dict | list):
            yield from _defaults(value, components, f"{where}.{key}", seen)


def test_no_patch_request_carries_a_default_so_a_generated_client_sends_only_the_fields_set(schema):
    # openapi-python-client (and others) send a property's default in every PATCH that does not
    # set it: a default in a PATCH body would reset the fields a PATCH did not name.
    components = schema["components"]["schemas"]
    patches = [(name, op) for name, op in operations(schema) if name.startswith("PATCH ")]
    assert patches
    found = []
    for name, operation in patches:
        for media in operation.get("requestBody", {}).get("content", {}).values():
            found += [f"{name} {hit}" for hit in _defaults(media["schema"], components, "body", set())]
    for component, body in components.items():
        if component.startswith("Patched"):
            found += list(_defaults(body, components, component, set()))
    assert not found, "\n".join(found)


def test_a_resources_response_marks_read_only_exactly_the_fields_no_request_sets(schema):
    components = schema["components"]["schemas"]

    def component(container):
        ref = container.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
        return ref.rsplit("/", 1)[-1]

    checked = 0
    for path, operations in schema["paths"].items():
        patch = operations.get("patch")
        if not patch:
            continue
        collection = path.rsplit("/", 1)[0]
        create = schema["paths"][collection].get("post", {})
        patchable = set(components[component(patch["requestBody"])]["properties"])
        creatable = set(components[component(create["requestBody"])]["properties"]) if create else set()
        returned = components[component(patch["responses"]["200"])]["properties"]
        for name, prop in returned.items():
            checked += 1
            assert bool(prop.get("readOnly")) == (name not in patchable | creatable), f"{path} {name}"
            once = name in creatable - patchable
            assert once == ("Set when created" in prop.get("description", "")), f"{path} {name}: set once"
    assert checked
