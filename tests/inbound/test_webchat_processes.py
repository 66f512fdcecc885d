"""The webchat with two web processes (AGENTBOT_WEB_WORKERS=2): a long-polling session's requests
may reach either process, and the chat works all the same (inbound/connectors/webchat/affinity.py).

Two uvicorn processes on two ports stand for two processes sharing one: the test sends every
request of the session to the other process than the one before, so none can be handled by luck."""

import json
import threading

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.inbound.conftest import SHOP
from tests.inbound.test_chat2desk_e2e import HOURS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


class PollingChat:
    """The Engine.IO v4 polling transport by hand, each request to the next of `urls` in turn."""

    def __init__(self, urls: list[str]) -> None:
        self.urls, self.turn = urls, 0
        self.http = requests.Session()
        self.http.headers["Origin"] = SHOP
        opened = self.http.get(f"{self._next()}/socket.io/?EIO=4&transport=polling", timeout=10)
        assert opened.status_code == 200 and opened.text.startswith("0"), opened.text
        self.sid = json.loads(opened.text[1:])["sid"]
        self.packets: list[str] = []

    def _next(self) -> str:
        url = self.urls[self.turn % len(self.urls)]
        self.turn += 1
        return url

    def _url(self) -> str:
        return f"{self._next()}/socket.io/?EIO=4&transport=polling&sid={self.sid}"

    def post(self, packet: str) -> requests.Response:
        return self.http.post(self._url(), data=packet.encode(), headers={"Content-Type": "text/plain"}, timeout=10)

    def poll(self) -> list[str]:
        got = self.http.get(self._url(), timeout=40)
        assert got.status_code == 200, got.text
        packets = got.text.split("\x1e")
        for packet in packets:
            if packet == "2":  # the server's ping: answer, as a client does
                self.post("3")
        self.packets += packets
        return packets

    def wait_for_event(self, name: str, rounds: int = 20) -> list:
        for _ in range(rounds):
            for packet in self.poll():
                if packet.startswith("42"):
                    event = json.loads(packet[2:])
                    if event[0] == name and (name != "message" or event[1]["sender_type"] == "ai"):
                        return event
        raise AssertionError(f"no {name!r} event in {self.packets}")


def test_a_polling_chat_works_whichever_of_two_web_processes_each_request_reaches(site, webchat, knowledge, start_server):
    first, second = start_server(AGENTBOT_WEB_WORKERS="2"), start_server(AGENTBOT_WEB_WORKERS="2")
    chat = PollingChat([second.url, first.url])  # opened on the second, then first, second, …
    assert chat.post("40" + json.dumps({"integration": webchat.id})).text == "OK"
    session = chat.wait_for_event("session")
    assert session[1]["resumed"] is False

    asked = threading.Thread(target=lambda: chat.post('421["message",{"text":' + json.dumps(HOURS) + "}]"))
    asked.start()
    answer = chat.wait_for_event("message")
    asked.join()
    assert answer[1]["text"] == knowledge.answer
    assert any(p.startswith("431") and '"ok":true' in p for p in chat.packets)  # the message's ack

    # A websocket upgrade that reaches the other process is refused; polling goes on.
    with pytest.raises(InvalidStatus):  # the session was opened on the second
        ws_connect(f"{first.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket&sid={chat.sid}", open_timeout=10)
    asked = threading.Thread(target=lambda: chat.post('422["message",{"text":' + json.dumps(HOURS) + "}]"))
    asked.start()
    chat.packets.clear()
    assert chat.wait_for_event("message")[1]["text"] == knowledge.answer
    asked.join()
    assert chat.post("1").text == "OK"  # the client closes the session


def test_polling_visitors_chat_through_a_port_shared_by_two_web_processes(site, webchat, knowledge, start_server, tmp_path):
    """As `manage.py serve` runs with AGENTBOT_WEB_WORKERS=2: one port, two processes, the kernel
    choosing which one takes each connection of a visitor's polling. (Whether a given run mixes the
    processes is the kernel's choice: the test above is the one that always does.)"""
    from tests.support.asgi_server import AsgiServer
    from tests.support.webchat_client import Visitor

    server = AsgiServer(
        tmp_path, workers=2, AGENTBOT_WEB_WORKERS="2", AGENTBOT_WEBCHAT_POLL_INTERVAL="0.3", AGENTBOT_WEBCHAT_ANSWER_WAIT="30"
    )
    visitors = [Visitor() for _ in range(3)]
    try:
        for visitor in visitors:
            visitor.connect(server.url, webchat.id, origin=SHOP, transports=["polling"])
        # One after another: visitors of one site writing at the same moment can meet a deadlock
        # in the inbound pipeline (retried by the sweep, which this test runs no worker for).
        for visitor in visitors:
            assert visitor.send(HOURS)["ok"] is True
            assert visitor.wait_for("message", lambda data: data["sender_type"] == "ai")["text"] == knowledge.answer
    finally:
        server.stop()  # first: a polling client's disconnect would wait for its long poll (25 s each)
        for visitor in visitors:
            visitor.close()
