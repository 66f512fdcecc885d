"""Fixtures of the fault tests: their own PostgreSQL and Redis, a fresh database per test, workers.

Nothing here touches pytest-django's database or the machine's shared services: every process
under test is a subprocess pointed at the throwaway servers, and results are read with psycopg.
"""

import os
import shutil
import signal
import uuid
from pathlib import Path

import pytest

from tests.faults.harness import Stack
from tests.faults.stack import Postgres, Redis, migrate, missing_binaries, scratch_dir
from tests.support.worker import Workers

TEMPLATE_DB = "agentbot_faults_template"


class Services:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.postgres = Postgres(base / "pg")
        self.redis = Redis(base)

    def restore(self) -> None:
        """Bring back whatever a test stopped, so the next one starts from running services."""
        if not self.postgres.running():
            self.postgres.start()
        if not self.redis.running():
            self.redis.start()


@pytest.fixture(scope="session")
def services():
    reason = missing_binaries()
    if reason:
        pytest.skip(f"fault tests need their own PostgreSQL and Redis: {reason}")
    base = scratch_dir("agentbot-faults-")
    found = Services(base)
    try:
        found.postgres.init()
        found.postgres.start()
        found.redis.start()
        migrate(found.postgres.create_database(TEMPLATE_DB), found.redis.url)
        yield found
    finally:
        found.redis.stop()
        if found.postgres.running():
            found.postgres.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def stack(services, request):
    """A fresh database cloned from the migrated template, an empty Redis, and a worker pool."""
    services.restore()
    services.redis.flush()
    name = f"faults_{uuid.uuid4().hex[:8]}"
    database_url = services.postgres.create_database(name, template=TEMPLATE_DB)
    logs = services.base / name
    logs.mkdir()
    workers = Workers(logs)
    current = Stack(
        name=request.node.name,
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": services.redis.url,
            "AGENTBOT_ALLOW_PRIVATE_URLS": "1",
            "PYTHONUNBUFFERED": "1",
        },
        workers=workers,
    )
    try:
        yield current
    finally:
        workers.stop_all(signal.SIGKILL)  # the test has counted; its database goes next
        services.restore()
        services.postgres.drop_database(name)
