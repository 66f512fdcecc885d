"""The webchat endpoint with the clients a third party would use: the official socket.io-client
(npm) in Node with its defaults (long-polling, then the upgrade) and polling only, and
python-socketio naming a real site as its Origin; the origin, size and rate limits hold on every
transport."""

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import socketio

from domain.models import Conversation
from tests.inbound.conftest import SHOP
from tests.inbound.test_chat2desk_e2e import wait_until
from tests.support.node import PACKAGES, node_modules
from tests.support.webchat_client import SUPPRESS_OWN_ORIGIN

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HOURS = "What are your opening hours?"


def node_visitor(server, integration_id: str, *, origin: str, **options) -> dict:
    """Run tests/support/webchat_node_client.js (socket.io-client) once; what it saw."""
    script = PACKAGES.parent / "webchat_node_client.js"
    arguments = json.dumps({"url": server.url, "integration": integration_id, "origin": origin, **options})
    done = subprocess.run(
        ["node", str(script), arguments], capture_output=True, text=True, timeout=60, env={"NODE_PATH": str(node_modules())}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_the_official_client_with_its_defaults_polls_upgrades_and_chats(site, webchat, knowledge, start_server):
    server = start_server()

    seen = node_visitor(server, webchat.id, origin=SHOP, page_url=f"{SHOP}/pricing", text=HOURS)

    assert seen["session"]["resumed"] is False and seen["ack"]["ok"] is True
    assert seen["answer"]["text"] == knowledge.answer
    assert (seen["upgraded"], seen["transport"]) == (True, "websocket")
    conversation = Conversation.objects.get(integration=webchat)
    assert (conversation.channel, conversation.page_url) == ("web", f"{SHOP}/pricing")


def test_the_official_client_on_polling_alone_chats_and_is_held_to_the_origins(site, webchat, knowledge, start_server):
    server = start_server()

    seen = node_visitor(server, webchat.id, origin=SHOP, transports=["polling"], text=HOURS)
    assert (seen["ack"]["ok"], seen["answer"]["text"], seen["transport"]) == (True, knowledge.answer, "polling")

    refused = node_visitor(server, webchat.id, origin="https://evil.example", transports=["polling"])
    assert refused["refused"]["data"] == {"error": "origin_not_allowed"}
    assert "https://evil.example may not open this chat" in refused["refused"]["message"]


def test_polling_answers_a_pages_browser_with_cors_headers_and_refuses_an_oversized_post(webchat, start_server):
    server = start_server()
    handshake = requests.get(f"{server.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": SHOP}, timeout=5)
    assert handshake.status_code == 200 and handshake.headers["Access-Control-Allow-Origin"] == SHOP
    sid = json.loads(handshake.text[1:])["sid"]
    # A POST over the size limit of a websocket frame (2000 characters × 6 bytes + 4 KB) is refused
    # unread, and the engine session closed, as an oversized frame closes its websocket.
    # (As a client does, a long-polling GET is waiting meanwhile: it gets the close packet, "1".)
    url = f"{server.url}/socket.io/?EIO=4&transport=polling&sid={sid}"
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(requests.get, url, timeout=30)
        while not waiting.running():
            time.sleep(0.01)
        time.sleep(0.5)  # the GET is in the server's hands
        assert requests.post(url, data=b"4" + b"x" * 20_000, timeout=10).status_code == 400
        assert (waiting.result().status_code, waiting.result().text) == (200, "1")
    assert requests.get(url, timeout=10).status_code == 400, "the session is gone"


def python_visitor(**client_options) -> tuple[socketio.Client, list]:
    client = socketio.Client(reconnection=False, **client_options)
    answers: list = []
    client.on("message", lambda data: answers.append(data) if data.get("sender_type") == "ai" else None)
    return client, answers


@pytest.mark.parametrize(
    ("client_options", "transport"),
    [
        # The documented way: websocket-client sends no Origin of its own, so the upgrade passes too.
        ({"websocket_extra_options": SUPPRESS_OWN_ORIGIN}, "websocket"),
        # Without it the websocket upgrade is refused (two Origin headers) and the client stays on polling.
        ({}, "polling"),
    ],
)
def test_python_socketio_naming_a_real_sites_origin_connects_and_chats(
    site,
    webchat,
    knowledge,
    start_server,
    client_options,
    transport,
):
    server = start_server()
    client, answers = python_visitor(**client_options)
    client.connect(server.url, headers={"Origin": SHOP}, auth={"integration": webchat.id}, wait_timeout=10)
    try:
        assert client.call("message", {"text": HOURS}, timeout=10)["ok"] is True
        wait_until(lambda: answers, what="the agent's answer")
        assert [a["text"] for a in answers] == [knowledge.answer]
        if transport == "websocket":  # the upgrade follows the connect: wait for it
            wait_until(lambda: client.transport() == "websocket", what="the upgrade")
        assert client.transport() == transport
    finally:
        if transport == "polling":
            # Closed without waiting for the read loop: python-engineio's server answers the long
            # poll pending at a client's close only with its next ping (pingInterval, 25 s).
            client.eio.disconnect(abort=True)
        else:
            client.disconnect()
