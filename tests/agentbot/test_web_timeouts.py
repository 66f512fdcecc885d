"""The web port's read timeouts, on the uvicorn command `agentbot serve` runs: a client that sends its
request headers or its body too slowly is answered 408 and its connection closed; others are served."""

import os
import signal
import socket
import subprocess
import time

import pytest
import requests
from django.conf import settings

from agentbot.management.commands.serve import service_commands
from tests.support.asgi_server import free_port
from tests.support.worker import ROOT
from tests.support.worker import test_database_url as database_url

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def web(tmp_path):
    port = free_port()
    (spec,) = [c for c in service_commands(host="127.0.0.1", port=port) if c.name == "web"]
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "AGENTBOT_WEB_HEADER_TIMEOUT": "1",
        "AGENTBOT_WEB_BODY_TIMEOUT": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "web.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(spec.argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.1)
    else:
        raise AssertionError(log.read_text(errors="replace")[-3000:])
    yield port
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def drip(port: int, head: bytes, then: bytes, every: float = 0.3, seconds: float = 6.0) -> tuple[bytes, float]:
    """Send `head` at once and then `then` a byte at a time; what the server answered, and when it
    closed the connection (seconds after the first byte)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=seconds)
    started = time.monotonic()
    answer = b""
    try:
        sock.sendall(head)
        sock.settimeout(every)
        for byte in then:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            answer += chunk
            if not chunk or answer:
                break
            if time.monotonic() - started > seconds:
                break
        sock.settimeout(2)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    finally:
        sock.close()
    return answer, time.monotonic() - started


def test_headers_sent_a_byte_at_a_time_are_cut_off_with_408(web):
    answer, took = drip(web, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Slow: " + b"a" * 100)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert took < 4, f"held for {took:.1f} s"


def test_a_body_dripped_slower_than_its_timeout_is_answered_408(web):
    head = b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    answer, took = drip(web, head, b"{" + b" " * 150)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b"request_timeout" in answer
    assert took < 4, f"held for {took:.1f} s"


def test_a_request_sent_in_time_is_served_and_kept_alive(web):
    with requests.Session() as http:
        for _ in range(3):
            assert http.get(f"http://127.0.0.1:{web}/healthz", timeout=5).status_code == 200
            time.sleep(0.5)


def test_the_next_requests_headers_on_a_kept_alive_connection_have_their_own_deadline(web):
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n"
    answer, took = drip(web, head, b"X-Slow: " + b"a" * 100)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"HTTP/1.1 408" in answer and answer.count(b"HTTP/1.1 200") == 1, answer
    assert took < 4, f"held for {took:.1f} s"


def test_serve_parses_http_with_httptools():
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from agentbot.serving import HeaderTimeoutHttpToolsProtocol

    (spec,) = [c for c in service_commands(host="127.0.0.1", port=8000) if c.name == "web"]
    assert spec.argv[spec.argv.index("--http") + 1] == "agentbot.serving:HeaderTimeoutHttpToolsProtocol"
    assert issubclass(HeaderTimeoutHttpToolsProtocol, HttpToolsProtocol)
