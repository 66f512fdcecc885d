import json

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from deliveries.models import Attempt, Delivery, Event
from tests.conftest import client_for
from tests.factories import SiteFactory

pytestmark = pytest.mark.django_db

DATA = {"conversation_id": "conv_1", "message_id": "msg_1", "sender_type": "visitor", "body": "Hi"}


def publish(api, **overrides):
    body = {"event": "message.created", "data": DATA}
    body.update(overrides)
    return api.post("/api/v1/events", body, format="json")


def test_publish_returns_the_event_with_its_fan_out(api, site, webhook_factory):
    webhook = webhook_factory(site=site)
    response = publish(api)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["event"] == "message.created" and body["data"] == DATA
    assert [d["webhook"] for d in body["deliveries"]] == [webhook.id]
    assert api.get(f"/api/v1/events/{body['id']}").json()["id"] == body["id"]


def test_the_publish_answers_with_the_event_as_stored_without_reading_it_back(api, site, webhook_factory):
    webhook_factory(site=site, events=["message.created"])
    webhook_factory(site=site, events=["*"], enabled=False)  # paused: its delivery waits
    body = {"event": "message.created", "data": {"b": 1.0, "a": [1e300, -0.0], "10": "x"}}
    with CaptureQueriesContext(connection) as queries:
        posted = api.post("/api/v1/events", body, format="json")
    assert posted.status_code == 201
    reads = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("SELECT") and "deliveries_" in q["sql"]]
    assert not reads, reads
    shown = api.get(f"/api/v1/events/{posted.json()['id']}").json()

    def by_id(event: dict) -> dict:
        return {**event, "deliveries": sorted(event["deliveries"], key=lambda d: d["id"])}

    assert by_id(posted.json()) == by_id(shown)
    assert list(posted.json()) == list(shown)  # the same keys in the same order
    assert [list(d) for d in posted.json()["deliveries"]] == [list(d) for d in shown["deliveries"]]
    assert list(shown["data"]) == ["10", "b", "a"] and shown["data"]["a"] == [1e300, 0]


def test_idempotent_replay_answers_200_with_the_first_event(api, site, webhook_factory):
    webhook_factory(site=site)
    first = publish(api, idempotency_key="order-42")
    again = publish(api, idempotency_key="order-42")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]


@pytest.mark.parametrize(
    "body, status, phrase",
    [
        ({"event": "message.deleted", "data": DATA}, 400, "unknown event type"),
        ({"event": "message.created", "data": [1, 2]}, 400, "data: must be a JSON object"),
        ({"event": 12, "data": DATA}, 400, "event: must be a JSON string"),
        ({"event": "message.created"}, 400, "data: This field is required"),
        ({"data": DATA}, 400, "event: This field is required"),
        ({"event": "message.created", "data": {"body": "x" * (300 * 1024)}}, 413, "limit is 262144 bytes"),
        ({"event": "message.created", "data": {"n": 9007199254740993}}, 400, "data.n"),
    ],
)
def test_bad_events_get_a_4xx_with_an_actionable_message(api, body, status, phrase):
    response = api.post("/api/v1/events", body, format="json")
    assert response.status_code == status, response.content
    assert phrase in response.json()["message"]


def test_request_body_over_one_megabyte_is_413(api):
    response = api.post(
        "/api/v1/events",
        data='{"event":"message.created","data":{"b":"' + "x" * (1100 * 1024) + '"}}',
        content_type="application/json",
    )
    assert response.status_code == 413


def test_delivery_log_shows_attempts_and_is_site_scoped(api, site, webhook_factory):
    webhook = webhook_factory(site=site)
    event_id = publish(api).json()["id"]
    delivery = Delivery.objects.get(event_id=event_id)
    Attempt.objects.create(
        delivery=delivery, number=1, at=delivery.created_at, status_code=500, response_body="oops", duration_ms=12
    )

    listed = api.get("/api/v1/deliveries").json()
    assert listed["count"] == 1
    item = listed["results"][0]
    assert item["id"] == delivery.id and item["webhook"] == webhook.id and item["event"] == event_id
    assert item["attempts"] == [
        {
            "number": 1,
            "at": item["attempts"][0]["at"],
            "status_code": 500,
            "response_body": "oops",
            "duration_ms": 12,
            "error": "",
        }
    ]
    assert api.get(f"/api/v1/webhooks/{webhook.id}/deliveries").json()["count"] == 1
    assert api.get("/api/v1/deliveries?status=failed").json()["count"] == 0
    assert api.get("/api/v1/deliveries?status=bogus").status_code == 400
    misspelt = api.get("/api/v1/deliveries?stauts=failed")
    assert misspelt.status_code == 400 and "unknown query parameter" in misspelt.json()["message"]

    other = client_for(SiteFactory())
    assert other.get(f"/api/v1/deliveries/{delivery.id}").status_code == 404
    assert other.post(f"/api/v1/deliveries/{delivery.id}/retry").status_code == 404
    assert other.get(f"/api/v1/events/{event_id}").status_code == 404
    assert other.get("/api/v1/deliveries").json()["count"] == 0


def test_retry_of_a_failed_delivery_makes_it_due_now_for_one_more_attempt(api, site, webhook_factory):
    webhook_factory(site=site)
    event_id = publish(api).json()["id"]
    delivery = Delivery.objects.get(event_id=event_id)
    Delivery.objects.filter(pk=delivery.pk).update(
        status="failed", attempt_count=5, schedule_position=5, leased_until=None, next_attempt_at=None
    )

    response = api.post(f"/api/v1/deliveries/{delivery.id}/retry")
    assert response.status_code == 202
    assert response.json()["status"] == "pending" and response.json()["next_attempt_at"] is not None
    delivery.refresh_from_db()
    assert delivery.schedule_position == 4, "a finished delivery gets exactly one more attempt"


def test_retry_of_a_delivery_in_flight_is_409(api, site, webhook_factory):
    webhook_factory(site=site)
    event_id = publish(api).json()["id"]
    delivery = Delivery.objects.get(event_id=event_id)  # leased by the on-commit enqueue
    response = api.post(f"/api/v1/deliveries/{delivery.id}/retry")
    assert response.status_code == 409 and "being sent" in response.json()["message"]


def test_test_endpoint_sends_webhook_test_to_that_webhook_only(api, site, webhook_factory):
    webhook = webhook_factory(site=site, events=["ticket.created"])
    webhook_factory(site=site, events=["*"])
    response = api.post(f"/api/v1/webhooks/{webhook.id}/test")
    assert response.status_code == 202
    (delivery,) = Delivery.objects.filter(event_id=response.json()["event_id"])
    assert delivery.webhook_id == webhook.id and delivery.event.type == "webhook.test"


def test_schema_and_docs_are_served(api_client):
    schema = api_client.get("/api/v1/schema", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ["/api/v1/webhooks", "/api/v1/events", "/api/v1/deliveries/{delivery_id}/retry", "/api/v1/event-types"]:
        assert path in paths
    docs = api_client.get("/api/v1/docs")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


@pytest.mark.parametrize(
    "raw, path",
    [
        ('{"event":"webhook.test","data":{"webhook_id":"wh_1","message":"a\\u0000b"}}', "data.message"),
        ('{"event":"webhook.test","data":{"webhook_id":"wh_1","message":["\\ud800"]}}', "data.message[0]"),
        ('{"event":"webhook.test","data":{"webhook_id":"wh_1","m\\u0000":"x"}}', "data key 'm\\x00'"),
    ],
)
def test_text_postgresql_cannot_store_is_a_400_naming_the_field(api, raw, path):
    response = api.post("/api/v1/events", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["message"].startswith(path) and "NUL character or an unpaired surrogate" in response.json()["message"]


def test_the_lean_publish_answers_as_the_drf_view_does(api, site, webhook_factory, monkeypatch):
    """The usual publish skips DRF (deliveries.api.event_publish_endpoint); a charset parameter
    sends the same body through EventPublishView: the two answers must not differ."""
    from deliveries import api as deliveries_api

    through_view = []
    view = deliveries_api._publish_view
    monkeypatch.setattr(deliveries_api, "_publish_view", lambda request: through_view.append(1) or view(request))
    webhook_factory(site=site, events=["*"])
    body = {"event": "message.created", "data": {"b": 1.0, "a": [1e300, -0.0], "é": "ü"}, "idempotency_key": "lean-1"}
    lean = api.post("/api/v1/events", body, format="json")
    viewed = api.post(
        "/api/v1/events", json.dumps({**body, "idempotency_key": "lean-2"}), content_type="application/json; charset=utf-8"
    )
    assert (lean.status_code, viewed.status_code) == (201, 201)
    assert through_view == [1]  # the charset one only
    ignore = {"id", "idempotency_key", "created_at", "deliveries"}
    assert {k: v for k, v in lean.json().items() if k not in ignore} == {
        k: v for k, v in viewed.json().items() if k not in ignore
    }
    assert list(lean.json()) == list(viewed.json())
    assert [list(d) for d in lean.json()["deliveries"]] == [list(d) for d in viewed.json()["deliveries"]]
    assert dict(lean.headers) == {**dict(viewed.headers), "Content-Length": lean.headers["Content-Length"]}
    again = api.post("/api/v1/events", body, format="json")  # the lean path's replay
    assert (again.status_code, again.json()["id"]) == (200, lean.json()["id"])


@pytest.mark.parametrize(
    "body, status, phrase",
    [
        ({"event": " message.created", "data": DATA}, 201, ""),  # trimmed, as the serializer does
        ({"event": "", "data": DATA}, 400, "event: This field may not be blank"),
        ({"event": "message.created", "data": DATA, "idempotency_key": ""}, 400, "idempotency_key: This field may not be blank"),
        ({"event": "message.created", "data": DATA, "idempotency_key": "k" * 256}, 400, "idempotency_key"),
        ({"event": "message.created", "data": DATA, "id": "evt_x"}, 400, "id: unknown field (read-only here)"),
        ({"event": "x" * 65, "data": DATA}, 400, "event: Ensure this field has no more than 64 characters"),
        ({"event": "ticket.created", "data": {"a": "\x00"}}, 400, "NUL"),
        ({"event": "ticket.created", "data": {}, "idempotency_key": "k\x00"}, 400, "idempotency_key: Null characters"),
        ({"event": "ticket.created", "data": {}, "idempotency_key": "k\ud800"}, 400, "idempotency_key: Surrogate"),
        ({"event": "ticket.created", "data": {}, "idempotency_key": " k "}, 201, ""),  # trimmed, as the serializer does
    ],
)
def test_what_the_lean_publish_does_not_take_gets_the_views_answer(api, site, body, status, phrase):
    response = api.post("/api/v1/events", json.dumps(body), content_type="application/json")  # (\ud800 escaped)
    assert response.status_code == status, response.content
    if phrase:
        assert phrase in response.json()["message"]
    else:
        assert response.json()["event"] == body["event"].strip()
        assert response.json()["idempotency_key"] == ((body.get("idempotency_key") or "").strip() or None)


def test_the_lean_publish_needs_a_valid_key(site):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer abk_not_a_key")
    response = client.post("/api/v1/events", {"event": "message.created", "data": DATA}, format="json")
    assert response.status_code == 401
    assert "not valid" in response.json()["message"]


# --- The plain publish below Django's request cycle (agentbot/serving.py's PlainPublish) -------------


class Served:
    """agentbot/asgi.py's Django stack in this process (BodyLimit, BufferedBody, PlainPublish and
    a2wsgi on one thread), with the paths of the requests that reached Django itself."""

    def __init__(self) -> None:
        from agentbot.serving import PlainPublish, django_in_threads
        from core.request_limits import BodyLimit

        stack = django_in_threads(1)
        self.plain = stack.app
        assert isinstance(self.plain, PlainPublish) and self.plain.enabled
        self.through_django: list[str] = []
        django_app = self.plain.app

        async def counted(scope, receive, send):
            self.through_django.append(scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else ""))
            await django_app(scope, receive, send)

        self.plain.app = counted
        self.app = BodyLimit(stack)

    def post(self, path: str, body, key: str | None, **headers: str):
        import asyncio

        import httpx

        async def go():
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                content = body if isinstance(body, bytes) else json.dumps(body).encode()
                sent = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
                sent.update({name.replace("_", "-"): value for name, value in headers.items()})
                return await client.post(path, content=content, headers=sent)

        return asyncio.run(go())

    def thread_holds_a_connection(self) -> bool:
        """Whether Django's thread kept a database connection after its request (Django gives it
        back to the pool at request_finished)."""
        return self.plain.executor.submit(lambda: connection.connection is not None).result()

    def close(self) -> None:
        self.plain.executor.submit(lambda: connection.close()).result()
        self.plain.executor.shutdown()


@pytest.fixture
def served(transactional_db):
    stack = Served()
    yield stack
    stack.close()


@pytest.fixture
def plain_key(transactional_db):
    from core.services import api_key_create

    site = SiteFactory()
    _, key = api_key_create(site=site)
    return site, key


def _wire_headers(response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k != "content-length"]


def test_the_plain_publish_is_answered_below_django_as_django_answers_it(served, plain_key, webhook_factory):
    site, key = plain_key
    webhook_factory(site=site, events=["*"])
    body = {"event": "message.created", "data": {"b": 1.0, "a": [1e300, -0.0], "é": "ü"}}
    plain = served.post("/api/v1/events", body, key)
    assert served.through_django == []  # answered below Django
    assert not served.thread_holds_a_connection()  # given back, as request_finished does
    django_lean = served.post("/api/v1/events?via=django", body, key)  # Django's cycle, the lean function
    viewed = served.post("/api/v1/events", body, key, Content_Type="application/json; charset=utf-8")  # DRF's view
    assert served.through_django == ["/api/v1/events?via=django", "/api/v1/events"]
    assert [r.status_code for r in (plain, django_lean, viewed)] == [201, 201, 201]
    assert _wire_headers(plain) == _wire_headers(django_lean) == _wire_headers(viewed)  # names, values and order
    assert int(plain.headers["content-length"]) == len(plain.content)
    ignore = {"id", "created_at", "deliveries"}
    shapes = [
        ({k: v for k, v in r.json().items() if k not in ignore}, [list(d) for d in r.json()["deliveries"]])
        for r in (plain, viewed)
    ]
    assert shapes[0] == shapes[1] and list(plain.json()) == list(viewed.json())
    stored = Event.objects.get(pk=plain.json()["id"])
    assert stored.data == body["data"] and Delivery.objects.filter(event=stored).count() == 1
    # Another language asked for: LocaleMiddleware's Content-Language, on both paths.
    portuguese = served.post("/api/v1/events", body, key, Accept_Language="pt-BR,pt;q=0.9")
    in_django = served.post("/api/v1/events?via=django", body, key, Accept_Language="pt-BR,pt;q=0.9")
    assert portuguese.headers["content-language"] == "pt-br" and _wire_headers(portuguese) == _wire_headers(in_django)
    assert served.through_django[-1] == "/api/v1/events?via=django" and len(served.through_django) == 3
    # The idempotent replay (200) too.
    first = served.post("/api/v1/events", {**body, "idempotency_key": "plain-1"}, key)
    again = served.post("/api/v1/events", {**body, "idempotency_key": "plain-1"}, key)
    replayed = served.post("/api/v1/events?via=django", {**body, "idempotency_key": "plain-1"}, key)
    assert (first.status_code, again.status_code, replayed.status_code) == (201, 200, 200)
    assert again.json() == replayed.json() and again.json()["id"] == first.json()["id"]
    assert _wire_headers(again) == _wire_headers(replayed) and len(served.through_django) == 4


@pytest.mark.parametrize(
    "body, key, headers, path, status, phrase",
    [
        ({"event": "message.created", "data": DATA}, "abk_not_a_key", {}, "", 401, "not valid"),
        ({"event": "message.created", "data": DATA}, None, {}, "", 401, "an API key is required"),
        ({"event": "", "data": DATA}, "key", {}, "", 400, "event: This field may not be blank"),
        ({"event": "message.created", "data": DATA, "id": "evt_x"}, "key", {}, "", 400, "id: unknown field"),
        ({"event": "no.such.type", "data": {}}, "key", {}, "", 400, "no.such.type"),
        (b'{"event": "message.created", "data": ', "key", {}, "", 400, "JSON"),
        ({"event": "message.created", "data": DATA}, "key", {"Content_Type": "text/plain"}, "", 415, "text/plain"),
        ({"event": "message.created", "data": DATA}, "key", {"Cookie": "sessionid=x"}, "", 201, ""),
        ({"event": "message.created", "data": DATA}, "key", {}, "?a=%00", 400, "control characters"),
        ({"event": "message.created", "data": DATA}, "key", {}, "/", 404, ""),
    ],
)
def test_what_the_plain_path_does_not_take_is_djangos_to_answer(served, plain_key, body, key, headers, path, status, phrase):
    key = plain_key[1] if key == "key" else key
    response = served.post("/api/v1/events" + path, body, key, **headers)
    assert response.status_code == status, response.content
    assert len(served.through_django) == 1
    if phrase:
        assert phrase in response.json()["message"]


def test_a_host_django_refuses_is_refused_on_the_plain_path_too(served, plain_key, settings):
    settings.ALLOWED_HOSTS = ["api.example.com"]
    response = served.post("/api/v1/events", {"event": "message.created", "data": DATA}, plain_key[1])
    assert response.status_code == 400 and served.through_django == ["/api/v1/events"]
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "error, status", [(OperationalError("connection refused"), 503), (ValueError("a bug"), 500)], ids=["database", "bug"]
)
def test_an_error_in_the_plain_publish_gets_djangos_answer(served, plain_key, monkeypatch, error, status):
    from deliveries.services import publish as publish_service

    def failing(**kwargs):
        raise error

    monkeypatch.setattr(publish_service, "event_publish", failing)
    body = {"event": "message.created", "data": DATA}
    plain = served.post("/api/v1/events", body, plain_key[1])
    in_django = served.post("/api/v1/events?via=django", body, plain_key[1])
    assert served.through_django == ["/api/v1/events?via=django"]
    assert (plain.status_code, in_django.status_code) == (status, status)
    assert plain.content == in_django.content and _wire_headers(plain) == _wire_headers(in_django)
    if status == 503:
        assert plain.headers["retry-after"] == "5" and plain.json()["error"] == "database_unavailable"
    assert not served.thread_holds_a_connection()


def test_the_plain_path_is_off_when_the_middleware_it_mirrors_changes(settings):
    from agentbot.serving import plain_publish_supported

    assert plain_publish_supported()
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    assert not plain_publish_supported()
    settings.MIDDLEWARE = settings.MIDDLEWARE[:-1]
    settings.SECURE_SSL_REDIRECT = True
    assert not plain_publish_supported()


@pytest.mark.django_db(transaction=True)
def test_a_real_server_answers_the_plain_publish_and_the_view_with_the_same_headers(tmp_path, webhook_factory):
    """agentbot/asgi.py under uvicorn: the plain publish (PlainPublish) and the same event through
    DRF's view (a charset parameter) answer with the same header lines, in the same order."""
    import requests

    from core.services import api_key_create
    from tests.support.asgi_server import AsgiServer

    site = SiteFactory()
    webhook_factory(site=site, events=["*"])
    _, key = api_key_create(site=site)
    server = AsgiServer(tmp_path)
    try:
        body = json.dumps({"event": "message.created", "data": DATA}).encode()
        answers = [
            requests.post(
                f"{server.url}/api/v1/events",
                data=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": content_type},
                timeout=10,
            )
            for content_type in ("application/json", "application/json; charset=utf-8")
        ]
    finally:
        server.stop()
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    lines = [[(k, v) for k, v in a.raw.headers.items() if k not in ("date", "content-length")] for a in answers]
    assert lines[0] == lines[1] and ("x-frame-options", "DENY") in lines[0]
    assert [len(a.content) for a in answers] == [int(a.headers["content-length"]) for a in answers]
    assert Event.objects.filter(site=site).count() == 2
