import pytest
from rest_framework.test import APIClient

from agentbot.celery import app as celery_app
from core.services import api_key_create
from tests.factories import SiteFactory, WebhookFactory
from tests.support.ports import closed_port as _closed_port
from tests.support.receiver import Receiver
from tests.support.worker import Workers


@pytest.fixture(autouse=True)
def _local_urls_allowed(settings):
    # Tests call receivers on 127.0.0.1; the URL policy's own tests switch this off again.
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = True


@pytest.fixture(autouse=True)
def _api_rate_limits_off(settings):
    # The buckets live in the tests' Redis across tests: a test that means them sets them low
    # (tests/core/test_limits.py); the others must not meet one another's.
    settings.AGENTBOT_API_RATE = 0
    settings.AGENTBOT_API_AUTH_FAILURE_RATE = 0


@pytest.fixture
def site(db):
    return SiteFactory()


@pytest.fixture
def api_client():
    return APIClient()


def client_for(site) -> APIClient:
    client = APIClient()
    _, plain = api_key_create(site=site)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    return client


@pytest.fixture
def api(site):
    """An API client holding a key of `site`."""
    return client_for(site)


@pytest.fixture
def webhook_factory(db):
    return WebhookFactory


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def workers(transactional_db, tmp_path, settings):
    """Start real Celery workers (with beat) on the test database; they stop after the test."""
    settings.AGENTBOT_DISPATCH_LEASE = 3
    celery_app.control.purge()
    pool = Workers(tmp_path)
    yield pool
    pool.stop_all()
    celery_app.control.purge()


@pytest.fixture
def closed_port():
    """A local port nothing answers on while the test runs (tests/support/ports.py)."""
    with _closed_port() as port:
        yield port
