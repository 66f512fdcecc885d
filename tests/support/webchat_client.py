"""A webchat visitor for tests: a real python-socketio client that records what the server sends."""

import threading
import time

import socketio

SERVER_EVENTS = ("session", "message", "typing", "handoff", "notice", "error")
# websocket-client sends an Origin of its own (the server's address) beside the one in `headers`,
# and uvicorn refuses a handshake with two ("invalid Origin header: multiple values"): a client
# that names its page's origin tells websocket-client to send none of its own (docs/inbound/webchat.md).
SUPPRESS_OWN_ORIGIN = {"suppress_origin": True}


class Visitor:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self.refusal: dict | None = None
        self.disconnected = threading.Event()
        self._cond = threading.Condition()
        self.client = socketio.Client(reconnection=False, websocket_extra_options=SUPPRESS_OWN_ORIGIN)
        for name in SERVER_EVENTS:
            self.client.on(name, self._recorder(name))
        self.client.on("connect_error", self._refused)
        self.client.on("disconnect", lambda *args: self.disconnected.set())

    def _recorder(self, name: str):
        def record(data=None):
            with self._cond:
                self.events.append((name, data))
                self._cond.notify_all()

        return record

    def _refused(self, data=None):
        with self._cond:
            self.refusal = data
            self._cond.notify_all()

    def connect(
        self, url: str, integration_id: str, *, origin: str | None, session: str | None = None, transports=("websocket",), **auth
    ) -> dict:
        """Connect as a page on `origin` would; the `session` event the server sends."""
        headers = {"Origin": origin} if origin else {}
        auth = {"integration": integration_id, **auth, **({"session": session} if session else {})}
        self.client.connect(url, headers=headers, auth=auth, transports=list(transports), wait_timeout=10)
        return self.wait_for("session")

    def refused(self, url: str, integration_id, *, origin: str | None, **auth) -> dict:
        """Try to connect; the connect_error data (`{"message", "data": {"error"}}` as the client gets it)."""
        try:
            self.client.connect(
                url,
                headers={"Origin": origin} if origin else {},
                auth={"integration": integration_id, **auth},
                transports=["websocket"],
                wait_timeout=10,
            )
        except socketio.exceptions.ConnectionError:
            pass
        else:
            raise AssertionError("the connection was accepted")
        assert self.refusal is not None
        return self.refusal

    def send(self, text, timeout: float = 10.0) -> dict:
        """Send a `message` (a {"text"} object, or any payload given as is); the server's ack."""
        payload = {"text": text} if isinstance(text, str) else text
        return self.client.call("message", payload, timeout=timeout)

    def wait_for(self, name: str, match=lambda data: True, timeout: float = 20.0) -> dict:
        """The first `name` event whose data matches, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event, data in self.events:
                    if event == name and match(data):
                        return data
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {name} event within {timeout:g} s; got {self.events}")
                self._cond.wait(left)

    def of(self, name: str) -> list[dict]:
        with self._cond:
            return [data for event, data in self.events if event == name]

    def close(self) -> None:
        if self.client.connected:
            self.client.disconnect()
