"""The receiver guide's Express receiver (docs/receivers/agentbot.md), run as written with the real express package,
takes an event near the 256 KB data limit from a real worker and verifies it."""

import subprocess

import pytest
import requests

from deliveries.models import Delivery
from tests.agentbot.test_receiver_guide import code_blocks
from tests.deliveries.test_end_to_end import wait_for_status
from tests.support.asgi_server import free_port
from tests.support.node import node_modules

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def guide_js(marker: str) -> str:
    (block,) = [b for b in code_blocks("js") if marker in b]
    return block


@pytest.fixture
def express_receiver(tmp_path):
    """The guide's verifyAgentbot and its Express route, with a store that records what it processed."""
    port = free_port()
    script = tmp_path / "receiver.js"
    script.write_text(
        guide_js("function verifyAgentbot(")
        + """
const express = require('express');
const app = express();
const processed = new Map();
async function alreadyProcessed(id) { return processed.has(id); }
async function processAndRecord(id, event) { processed.set(id, event); }
"""
        + guide_js("app.post('/agentbot'")
        + f"""
app.get('/processed', (req, res) => res.json([...processed].map(([id, e]) => ({{ id, bytes: JSON.stringify(e).length }}))));
app.listen({port}, '127.0.0.1', () => console.log('listening'));
"""
    )
    env = {"NODE_PATH": str(node_modules()), "PATH": "/usr/bin:/bin:/usr/local/bin", "AGENTBOT_SECRET": ""}
    holder = {}

    def start(secret: str) -> str:
        proc = subprocess.Popen(["node", str(script)], env={**env, "AGENTBOT_SECRET": secret}, stdout=subprocess.PIPE, text=True)
        holder["proc"] = proc
        assert proc.stdout.readline().strip() == "listening"
        return f"http://127.0.0.1:{port}"

    yield start
    if "proc" in holder:
        holder["proc"].kill()
        holder["proc"].wait()


def test_the_guides_express_receiver_verifies_an_event_of_about_250_kb(api, site, webhook_factory, express_receiver, workers):
    webhook = webhook_factory(site=site, url="http://127.0.0.1:1/placeholder", events=["ticket.created"])
    base = express_receiver(webhook.secret)
    webhook.url = f"{base}/agentbot"
    webhook.save(update_fields=["url"])
    workers.start(concurrency=1)

    data = {"ticket_id": "tkt_big", "note": "Ünïcode 💬 " + "x" * 250_000}
    response = api.post("/api/v1/events", {"event": "ticket.created", "data": data}, format="json")
    assert response.status_code in (200, 201, 202), response.json()
    delivery = Delivery.objects.get(webhook=webhook)
    delivery = wait_for_status(delivery.id, "succeeded")
    assert [a.status_code for a in delivery.attempts.all()] == [204]
    processed = requests.get(f"{base}/processed", timeout=5).json()
    assert [p["id"] for p in processed] == [delivery.id] and processed[0]["bytes"] > 250_000
