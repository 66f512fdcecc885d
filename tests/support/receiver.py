"""A real local HTTP receiver for end-to-end tests: records every request, answers as told."""

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # time.time() on arrival


# (number of this request, 1-based) -> (status, body) or (status, body, extra response headers);
# a status of None means: hang, never answer
Responder = Callable[[int], tuple]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A burst of concurrent deliveries must not overflow the listen backlog (socketserver's is 5):
    # dropped connection attempts are retried by the kernel a second or more later, which turns
    # into client timeouts that are the test server's doing, not the sender's.
    request_queue_size = 256

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the sender went away (a killed worker, a timeout): nothing to answer, no trace
        super().handle_error(request, client_address)


class Receiver:
    def __init__(self, port: int = 0, *, tls=None) -> None:
        """`tls`: an ssl.SSLContext (server side) to listen with HTTPS instead of HTTP."""
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self.responder: Responder = lambda n: (200, b'{"ok":true}')
        # Checks a request's (lower-cased) headers before the responder: False answers 401.
        self.authorize: Callable[[dict[str, str]], bool] | None = None
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._cond:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                    )
                    number = len(receiver.received)
                    receiver._cond.notify_all()
                check = receiver.authorize
                if check is not None and not check(receiver.received[number - 1].headers):
                    status, payload, extra = 401, b'{"error":"unauthorized"}', []
                else:
                    status, payload, *extra = receiver.responder(number)
                if status is None:
                    receiver._release.wait(60)
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", port), Handler)
        self.scheme = "https" if tls is not None else "http"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_port}/hook"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} requests within {timeout:g} s, got {len(self.received)}")
                self._cond.wait(left)
            return list(self.received)

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


def fail_times(n: int, status: int = 500) -> Responder:
    return lambda number: (status, b'{"error":"down"}') if number <= n else (200, b'{"ok":true}')


def slow(seconds: float, status: int = 200) -> Responder:
    """Answer every request, each after `seconds`: keeps requests in flight long enough to interrupt."""

    def respond(number: int) -> tuple[int, bytes]:
        time.sleep(seconds)
        return status, b'{"ok":true}'

    return respond


def held(gate: threading.Event, timeout: float = 30.0) -> Responder:
    """Hold every request open until `gate` is set, then answer 200: requests in flight on cue."""

    def respond(number: int) -> tuple[int, bytes]:
        gate.wait(timeout)
        return 200, b'{"ok":true}'

    return respond
