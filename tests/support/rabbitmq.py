"""The test RabbitMQ (127.0.0.1:5672, guest/guest): a temporary exchange with a queue bound to it,
read as a subscriber's consumer would, and removed afterwards; and stopping and starting the
broker for the fault tests."""

import asyncio
import contextlib
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field

import aio_pika

from deliveries.engine.amqp import usable

BROKER = "amqp://guest:guest@127.0.0.1:5672/"
# The webhook's URL for the test broker (the service stores the password apart, encrypted).
WEBHOOK_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


@dataclass
class Received:
    """One message as the consumer got it."""

    body: bytes
    headers: dict
    message_id: str | None
    type: str | None
    content_type: str | None
    delivery_mode: int | None
    routing_key: str | None
    properties: dict = field(default_factory=dict)


class BrokerQueue:
    """A durable exchange and queue with unique names (so they, and persistent messages in them,
    outlive a broker restart), bound with `binding_key`; `get` reads messages, reconnecting if the
    broker restarted; `close` deletes both."""

    def __init__(self, *, binding_key: str = "#", exchange_type: str = "topic", queue_arguments: dict | None = None) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.exchange = f"agentbot-test-{suffix}"
        self.queue = f"agentbot-test-q-{suffix}"
        self.binding_key = binding_key
        self.exchange_type = aio_pika.ExchangeType(exchange_type)
        self.queue_arguments = queue_arguments
        self.received: list[Received] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-rabbitmq", daemon=True)
        self._thread.start()
        self._connection = self._channel = self._queue = None
        self._run(self._declare())

    def _run(self, coroutine, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _declare(self) -> None:
        if not usable(self._connection):  # also when only aiormq noticed that the broker went away
            if self._connection is not None and not self._connection.is_closed:
                # Closed here, on its loop: dropped open, its finaliser would try from another thread.
                with contextlib.suppress(Exception):
                    await self._connection.close()
            self._connection = await aio_pika.connect(BROKER, timeout=10)
            self._channel = None
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel()
        exchange = await self._channel.declare_exchange(self.exchange, self.exchange_type, durable=True)
        self._queue = await self._channel.declare_queue(self.queue, durable=True, arguments=self.queue_arguments)
        await self._queue.bind(exchange, self.binding_key)

    async def _get_one(self) -> Received | None:
        message = await self._queue.get(no_ack=True, fail=False, timeout=5)
        if message is None:
            return None
        return Received(
            body=message.body,
            headers=dict(message.headers or {}),
            message_id=message.message_id,
            type=message.type,
            content_type=message.content_type,
            delivery_mode=int(message.delivery_mode) if message.delivery_mode is not None else None,
            routing_key=message.routing_key,
            properties={"app_id": message.app_id, "timestamp": message.timestamp},
        )

    def get(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Wait until `count` messages in all have been read (then return all read so far)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} of {count} messages arrived in {timeout:g} s")
            try:
                message = self._run(self._get_one())
            except Exception:  # the broker is restarting: connect again
                time.sleep(0.5)
                try:
                    self._run(self._declare())
                except Exception:
                    pass
                continue
            if message is None:
                time.sleep(0.1)
            else:
                self.received.append(message)
        return list(self.received)

    def drain(self, wait: float = 1.0) -> list[Received]:
        """Whatever else arrives within `wait` seconds (to show that nothing more came)."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            message = self._run(self._get_one())
            if message is None:
                time.sleep(0.1)
            else:
                self.received.append(message)
        return list(self.received)

    async def _delete(self) -> None:
        await self._declare()
        await self._queue.delete(if_unused=False, if_empty=False)
        await self._channel.exchange_delete(self.exchange)
        await self._connection.close()
        await asyncio.sleep(0.2)  # aiormq's reader and writer tasks end after the close

    def close(self) -> None:
        try:
            self._run(self._delete())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)


# --- the broker's process (fault tests) ------------------------------------------------------
def broker_answers() -> bool:
    """The broker speaks AMQP: to the protocol header it answers with a method frame
    (Connection.Start). A port that is open while the app is stopped does not."""
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=3) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            return sock.recv(1) == b"\x01"
    except OSError:
        return False


def _rabbitmqctl(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=timeout)


def broker_stop() -> None:
    """Stop the broker's app (the node keeps running, so it can start again at once)."""
    done = _rabbitmqctl("stop_app")
    assert done.returncode == 0, f"rabbitmqctl stop_app failed: {done.stderr}"


def broker_start(timeout: float = 60.0) -> None:
    """Start the broker's app again and wait until it takes connections; a node that is gone is
    started anew."""
    done = _rabbitmqctl("start_app")
    if done.returncode != 0:
        subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, timeout=30)
    deadline = time.monotonic() + timeout
    while not broker_answers():
        if time.monotonic() > deadline:
            raise AssertionError("RabbitMQ did not come back")
        if done.returncode != 0:
            done = _rabbitmqctl("start_app", timeout=30)
        time.sleep(0.5)


class SilentBroker:
    """A port that takes TCP connections and never says a word: a broker that hangs."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="silent-broker", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:  # closed
                return
            self._held.append(conn)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def close(self) -> None:
        self._server.close()
        for conn in self._held:
            conn.close()
