"""A local stand-in for Chat2Desk's API: records webhook registrations and the messages sent to
clients, checks the API token, and fails on cue. Also a stand-in for an OpenAI-compatible chat
completions API."""

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict


class JsonServer:
    """A threaded HTTP server whose `handle(method, path, headers, body)` returns (status, JSON)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._cond = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                call = Call(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with server._cond:
                    server.calls.append(call)
                    server._cond.notify_all()
                status, answer = server.handle(call)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def handle(self, call: Call) -> tuple[int, object]:
        raise NotImplementedError

    def wait_for(self, predicate: Callable[[list[Call]], bool], timeout: float = 30.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.calls):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not seen within {timeout:g} s; calls: {[(c.method, c.path) for c in self.calls]}")
                self._cond.wait(left)
            return list(self.calls)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Registration:
    id: int
    url: str
    name: str
    events: list[str]


class FakeChat2Desk(JsonServer):
    """`POST /v1/webhooks`, `PUT /v1/webhooks/{id}`, `GET /v1/webhooks`, `POST /v1/messages`."""

    def __init__(self, token: str = "c2d-token") -> None:
        self.token = token
        self.registrations: dict[int, Registration] = {}
        self.messages: list[dict] = []
        self.fail_messages = 0  # answer the next N message sends with a 500
        self._next_id = 100
        super().__init__()

    def handle(self, call: Call) -> tuple[int, object]:
        if call.headers.get("authorization") != self.token:
            return 401, {"status": "error", "message": "wrong token"}
        path = call.path.rstrip("/")
        if path == "/v1/webhooks" and call.method == "GET":
            return 200, {"data": [r.__dict__ for r in self.registrations.values()], "status": "success"}
        if path == "/v1/webhooks" and call.method == "POST":
            self._next_id += 1
            registration = Registration(self._next_id, call.body["url"], call.body.get("name", ""), call.body["events"])
            self.registrations[registration.id] = registration
            return 200, {"data": registration.__dict__, "status": "success"}
        if path.startswith("/v1/webhooks/") and call.method == "PUT":
            number = int(path.rsplit("/", 1)[1])
            if number not in self.registrations:
                return 404, {"status": "error", "message": "webhook not found"}
            registration = Registration(number, call.body["url"], call.body.get("name", ""), call.body["events"])
            self.registrations[number] = registration
            return 200, {"data": registration.__dict__, "status": "success"}
        if path == "/v1/messages" and call.method == "POST":
            if self.fail_messages > 0:
                self.fail_messages -= 1
                return 500, {"status": "error", "message": "temporarily unavailable"}
            self.messages.append(call.body)
            return 200, {"data": {"message_id": 5000 + len(self.messages)}, "status": "success"}
        return 404, {"status": "error", "message": f"no route {call.method} {call.path}"}


class FakeCompletions(JsonServer):
    """`POST /v1/chat/completions`: answers with `reply(messages)` (a string), or fails on cue."""

    def __init__(self, reply: Callable[[list[dict]], str]) -> None:
        self.reply = reply
        self.status = 200
        super().__init__()

    def handle(self, call: Call) -> tuple[int, object]:
        if call.path.rstrip("/") != "/v1/chat/completions" or call.method != "POST":
            return 404, {"error": {"message": "not found"}}
        if self.status != 200:
            return self.status, {"error": {"message": "overloaded"}}
        content = self.reply(call.body["messages"])
        return 200, {
            "id": f"chatcmpl-{len(self.calls)}",
            "object": "chat.completion",
            "model": call.body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        }
