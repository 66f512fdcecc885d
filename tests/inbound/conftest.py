import hashlib
import hmac
import json

import pytest

from agentbot.celery import app as celery_app
from inbound import integrations
from inbound.models import KnowledgeEntry
from tests.support.asgi_server import AsgiServer
from tests.support.fake_chat2desk import FakeChat2Desk


@pytest.fixture
def chat2desk():
    fake = FakeChat2Desk()
    yield fake
    fake.close()


@pytest.fixture
def integration(site, chat2desk):
    return integrations.integration_create(site=site, name="Support", api_url=chat2desk.url, api_token=chat2desk.token)


SHOP = "https://shop.example"  # the origin the webchat fixture allows


@pytest.fixture
def webchat(site):
    return integrations.integration_create(site=site, connector_type="webchat", name="Shop chat", allowed_origins=SHOP)


@pytest.fixture
def start_server(tmp_path):
    """Start uvicorn serving agentbot/asgi.py on the test database (as many as a test asks for)."""
    servers = []

    def start(**env) -> AsgiServer:
        servers.append(AsgiServer(tmp_path, **{"AGENTBOT_WEBCHAT_POLL_INTERVAL": "0.3", **env}))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
    # Deliveries published with no worker to take them must not reach a later test's worker.
    celery_app.control.purge()


@pytest.fixture
def knowledge(site):
    return KnowledgeEntry.objects.create(
        site=site,
        question="What are your opening hours?",
        answer="We are open from 9:00 to 18:00, Monday to Friday.",
        keywords="hours, open, horario",
    )


def signed(secret: str, payload) -> tuple[bytes, str]:
    """The body and its `sha256=<hex>` signature, computed as seed 000's Node example does."""
    body = json.dumps(payload).encode()
    return body, "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(client, integration, payload, header: str = "x-webhook-signature", secret: str | None = None):
    body, signature = signed(integration.webhook_secret if secret is None else secret, payload)
    return client.generic(
        "POST",
        f"/api/webhook/{integration.connector_type}/{integration.id}",
        body,
        content_type="application/json",
        headers={header: signature},
    )
