"""PostgreSQL stopped under the REST API (the fault tests' own cluster): publishes get 503 with
Retry-After and a JSON message, never a 500, and nothing of them is stored; once the database is
back the same service answers 201 again by itself, and every 201 is delivered."""

import time
import uuid

import pytest
import requests

from tests.support.service import Service

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


def publish(service: Service, key: str) -> requests.Response:
    body = {"event": "ticket.created", "data": {"ticket_id": "tkt_down", "subject": "Down", "status": "open"}}
    return requests.post(f"{service.url}/api/v1/events", json={**body, "idempotency_key": key}, headers=service.auth, timeout=30)


def test_postgres_down_gives_503_with_retry_after_then_201s_again_and_every_201_is_delivered(stack, services, receiver, tmp_path):
    service = Service(
        tmp_path,
        database_url=stack.env["DATABASE_URL"],
        broker_url=stack.env["CELERY_BROKER_URL"],
        AGENTBOT_DB_POOL_TIMEOUT="2",
        AGENTBOT_SWEEP_INTERVAL="1",
        AGENTBOT_HTTP_TIMEOUT="5",
    )
    try:
        service.webhook_create(receiver.url)
        accepted: dict[str, str] = {}  # idempotency key -> delivery id
        refused: list[str] = []

        def record(key: str, response: requests.Response) -> None:
            assert response.status_code < 500 or response.status_code == 503, f"{response.status_code}: {response.text[:500]}"
            if response.status_code == 201:
                accepted[key] = response.json()["deliveries"][0]["id"]
            else:
                assert response.status_code == 503, response.text
                assert response.headers["Content-Type"] == "application/json", response.headers
                assert int(response.headers["Retry-After"]) > 0
                assert response.json()["error"] == "database_unavailable"
                assert "Traceback" not in response.text
                refused.append(key)

        for _ in range(5):
            key = uuid.uuid4().hex
            record(key, publish(service, key))
        assert len(accepted) == 5

        services.postgres.stop("fast")
        for _ in range(4):
            key = uuid.uuid4().hex
            record(key, publish(service, key))
        assert len(refused) == 4, "every publish while the database is down is refused"
        ready = requests.get(f"{service.url}/readyz", timeout=30)
        assert ready.status_code == 503

        services.postgres.start()
        deadline = time.monotonic() + 60
        before = len(accepted)
        while len(accepted) < before + 5:  # the pool reconnects by itself: no restart of the service
            assert time.monotonic() < deadline, f"no 201 within 60 s of the database's return:\n{service.log()[-3000:]}"
            key = uuid.uuid4().hex
            record(key, publish(service, key))
            time.sleep(0.2)

        with services.postgres.connect(stack.env["DATABASE_URL"].rsplit("/", 1)[1]) as conn:
            stored = {row[0] for row in conn.execute("SELECT idempotency_key FROM deliveries_event")}
        assert stored == set(accepted), "stored events are exactly the 201s"
        assert not stored & set(refused)

        arrived = {r.headers["x-agentbot-delivery-id"] for r in receiver.wait_for(len(accepted), timeout=60)}
        assert set(accepted.values()) <= arrived
    finally:
        service.stop()
