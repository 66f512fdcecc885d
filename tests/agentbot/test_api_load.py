"""The REST API under 64 concurrent publishers, served as `make run` serves it (`manage.py serve`):
no response is a 5xx, every 201 is stored and delivered, and the PostgreSQL connections of web,
worker and beat together stay within their pools' bound."""

import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connection

from agentbot.celery import app as celery_app
from tests.support.service import Service
from tests.support.worker import test_database_url as database_url

pytestmark = pytest.mark.e2e

POOL_MAX = 3  # per process, small so that the bound is well under what 64 publishers would open
PUBLISHERS = 64
PER_PUBLISHER = 5
EVENT = {"event": "ticket.created", "data": {"ticket_id": "tkt_load", "subject": "Load", "status": "open"}}


class ConnectionPeak:
    """The largest number of connections to the test database held across two samples 20 ms apart,
    from anything but this test process (its own Django connection and this sampler's). A backend
    whose client has just closed it is listed until it exits, for a few milliseconds: a pool that
    replaces a connection would otherwise be seen holding one more than it ever does."""

    def __init__(self, excluded_pid: int) -> None:
        self.peak = 0
        self._excluded = excluded_pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        previous: set[int] = set()
        with psycopg.connect(database_url(), autocommit=True) as conn:
            while not self._stop.is_set():
                pids = {
                    pid
                    for (pid,) in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid() AND pid <> %s",
                        [self._excluded],
                    ).fetchall()
                }
                self.peak = max(self.peak, len(pids & previous))
                previous = pids
                self._stop.wait(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def test_64_concurrent_publishers_get_no_5xx_and_connections_stay_within_the_pools(transactional_db, tmp_path, receiver):
    celery_app.control.purge()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (own_pid,) = cursor.fetchone()
    service = Service(
        tmp_path,
        database_url=database_url(),
        broker_url=settings.CELERY_BROKER_URL,
        AGENTBOT_DB_POOL_MAX=str(POOL_MAX),
        AGENTBOT_DB_POOL_MIN="1",
    )
    # Each web process, each worker and the first one's beat has one pool; `manage.py serve` itself
    # closes its own.
    bound = (settings.AGENTBOT_WEB_WORKERS + settings.AGENTBOT_WORKER_PROCESSES + 1) * POOL_MAX
    try:
        service.webhook_create(receiver.url)
        peak = ConnectionPeak(own_pid)
        start = threading.Barrier(PUBLISHERS)

        def publisher(n: int) -> list[tuple[int, dict | str]]:
            out = []
            with requests.Session() as session:
                start.wait()
                for _ in range(PER_PUBLISHER):
                    response = session.post(f"{service.url}/api/v1/events", json=EVENT, headers=service.auth, timeout=60)
                    out.append((response.status_code, response.json() if response.status_code == 201 else response.text))
            return out

        try:
            with ThreadPoolExecutor(PUBLISHERS) as pool:
                responses = [r for batch in pool.map(publisher, range(PUBLISHERS)) for r in batch]
        finally:
            highest = peak.stop()

        failed = [(status, body) for status, body in responses if status >= 500]
        assert not failed, f"{len(failed)} responses >= 500, the first: {failed[0]}"
        assert [status for status, _ in responses] == [201] * PUBLISHERS * PER_PUBLISHER
        print(f"\n[load] peak {highest} connections, bound {bound}")
        assert 0 < highest <= bound, f"{highest} connections to the database; the pools allow {bound}"

        accepted = {body["deliveries"][0]["id"] for _, body in responses}
        with psycopg.connect(database_url(), autocommit=True) as conn:
            (stored,) = conn.execute("SELECT count(*) FROM deliveries_event").fetchone()
        assert stored == len(accepted)
        arrived = {r.headers["x-agentbot-delivery-id"] for r in receiver.wait_for(len(accepted), timeout=60)}
        assert accepted <= arrived
    finally:
        service.stop()
