"""Bodies past the limit (DATA_UPLOAD_MAX_MEMORY_SIZE, 1 MB) against the real ASGI server: the 413
comes before the body is read, with a Content-Length and without one (chunked)."""

import socket

import pytest

from tests.support.asgi_server import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)
CHUNK = b"x" * 65536


@pytest.fixture
def server(tmp_path):
    running = AsgiServer(tmp_path)
    yield running
    running.stop()


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a 413 closes it)."""
    sock.settimeout(30)
    data = b""
    try:
        while part := sock.recv(65536):
            data += part
    except ConnectionResetError:
        pass
    return data


def _connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


@pytest.mark.parametrize(
    "path, size", [("/api/v1/events", 40 * 1024 * 1024), ("/api/webhook/chat2desk/intg_" + "0" * 26, 300 * 1024 * 1024)]
)
def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(server, path, size):
    with _connect(server) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
        sock.sendall(head.encode() + CHUNK)  # 64 KB of the declared size, then wait for the answer
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"the request body must be at most 1024 KB" in answer
    if path.startswith("/api/webhook/"):
        assert b'"ok": false' in answer and b'"too_large"' in answer


def test_a_chunked_body_stops_being_read_at_the_limit(server):
    """2 MB of a chunked body that never ends: a server reading it to its end would never answer."""
    with _connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            for _ in range(32):
                sock.sendall(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before all of it was sent
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
