"""A database that refuses or drops connections is a 503 with Retry-After and a JSON message, in the
REST API, in the other views and in what a middleware raised; any other error stays a 500.
(tests/faults/test_api_database_down.py stops a real PostgreSQL under the running service.)"""

import asyncio
import json

from django.db import InterfaceError, OperationalError
from django.test import RequestFactory

from agentbot.serving import BufferedBody
from core.api.errors import DatabaseUnavailableMiddleware, exception_handler, json_server_error


def assert_unavailable(response) -> None:
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    body = json.loads(response.content)
    assert body["error"] == "database_unavailable"
    assert "try again" in body["message"]


def test_the_api_answers_503_with_retry_after_when_the_database_refuses():
    response = exception_handler(OperationalError("connection refused"), {})
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.data["error"] == "database_unavailable"


def test_a_view_outside_the_api_answers_503_when_its_connection_was_dropped():
    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    response = middleware.process_exception(RequestFactory().get("/admin/"), InterfaceError("connection already closed"))
    assert_unavailable(response)


def test_other_exceptions_are_left_to_django():
    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    assert middleware.process_exception(RequestFactory().get("/admin/"), ValueError("a bug")) is None


def test_a_middlewares_database_error_ends_in_503_and_any_other_in_500():
    request = RequestFactory().get("/admin/")
    try:
        raise OperationalError("the database system is starting up")
    except OperationalError:
        assert_unavailable(json_server_error(request))
    try:
        raise ValueError("a bug")
    except ValueError:
        response = json_server_error(request)
    assert response.status_code == 500 and "Retry-After" not in response


def run_buffered(messages: list[dict], cap: int = 10) -> tuple[list[dict], list[dict]]:
    """What the app behind BufferedBody received, and what was sent to the client."""
    got, sent = [], []
    incoming = list(messages)

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        got.append(await receive())

    asyncio.run(BufferedBody(app, cap)({"type": "http"}, receive, send))
    return got, sent


def test_the_body_reaches_django_in_one_message_once_it_has_all_arrived():
    got, sent = run_buffered(
        [
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.request", "body": b"cd", "more_body": True},
            {"type": "http.request", "body": b"e", "more_body": False},
        ]
    )
    assert got == [{"type": "http.request", "body": b"abcde", "more_body": False}] and sent == []


def test_a_body_over_the_cap_is_413_without_reaching_django():
    got, sent = run_buffered([{"type": "http.request", "body": b"x" * 11, "more_body": False}])
    assert got == []
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"] == "payload_too_large"


def test_a_client_that_leaves_before_its_body_is_complete_never_reaches_django():
    got, sent = run_buffered([{"type": "http.request", "body": b"ab", "more_body": True}])
    assert got == [] and sent == []


def test_a_publish_that_loses_the_database_before_its_commit_stores_nothing(api, site, webhook_factory, monkeypatch):
    from deliveries import api as deliveries_api
    from deliveries.models import Delivery, Event

    webhook_factory(site=site)

    def lost(event):
        raise OperationalError("server closed the connection unexpectedly")

    # The response is made inside the publish's transaction: a failure there rolls the publish back.
    monkeypatch.setattr(deliveries_api, "published_body", lost)
    response = api.post("/api/v1/events", {"event": "ticket.created", "data": {"ticket_id": "tkt_1"}}, format="json")
    assert response.status_code == 503 and response["Retry-After"]
    assert not Event.objects.exists() and not Delivery.objects.exists()
