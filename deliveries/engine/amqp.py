"""Publishing a delivery to a RabbitMQ broker (AMQP 0-9-1): the destination of a webhook whose URL
is `amqp://` or `amqps://`.

A delivery is one persistent message, published with `mandatory` on a channel in confirm mode:
the broker's confirm is the success, and a nack, a return (no queue bound for the routing key), a
closed channel or connection, or no answer within AGENTBOT_HTTP_TIMEOUT are failed attempts with
their reason, retried by the format's schedule like an HTTP failure. Nothing is lost: a message
the broker did not confirm is never recorded as delivered.

Connections live on the process's event loop (the HTTP client's, deliveries/engine/http.py), one per
broker account: keyed by the address connected to, port, vhost, user, password (as a digest) and
TLS. A connection the broker closed (a restart) is replaced by the next publish. Each webhook has
its own channel on it, so one webhook's channel error (an exchange that does not exist closes the
channel) fails only that webhook's messages.

The broker's host passes the URL policy when it is connected to, as an HTTP URL's does, and the
connection goes to the very address that was checked (for amqps the certificate is still checked
against the host name). The password is put back into the URL only here, to connect; it is never
in a result, a log line or an error.
"""

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection, ConnectionParameter, DeliveryMode
from django.conf import settings
from pamqp.commands import Basic

from core.process import PerProcess
from deliveries.engine import http
from subscriptions.url_policy import MASKED_PASSWORD, BrokerTarget, UrlNotAllowed, broker_url_parse

logger = logging.getLogger(__name__)

APP_ID = "agentbot-webhooks"
# Headers the format signs with that are message properties over AMQP rather than headers.
PROPERTY_HEADERS = {"content-type"}


@dataclass
class BrokerMessage:
    """One delivery attempt as a message: where it goes and what it carries."""

    url: str  # as stored: the password written ****
    password: str = field(repr=False)
    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, str]
    message_id: str
    type: str
    channel_owner: str  # the webhook: each has its own channel
    timestamp: datetime | None = None
    timeout: float | None = None  # seconds; AGENTBOT_HTTP_TIMEOUT when None

    def where(self) -> str:
        return f"exchange={self.exchange!r} routing key={self.routing_key!r}"


class _Connection(aio_pika.Connection):
    """aio-pika's connection, also passing `server_hostname` to the socket: the connection goes
    to the checked address, and TLS checks the certificate against the URL's host name."""

    PARAMETERS = (*aio_pika.Connection.PARAMETERS, ConnectionParameter(name="server_hostname", parser=str, is_kwarg=True))


PoolKey = tuple[str, int, str, str, str, bool]


def pool_key(broker: BrokerTarget, address, password: str) -> PoolKey:
    # A digest, not the password: a key may be seen in a debugger or a log of the pool.
    digest = hashlib.sha256(password.encode()).hexdigest()
    return (str(address), broker.port, broker.vhost, broker.user, digest, broker.tls)


class Pool:
    """This process's broker connections and channels; used on the event loop only."""

    def __init__(self) -> None:
        self.connections: dict[PoolKey, AbstractConnection] = {}
        self.channels: dict[tuple[PoolKey, str], AbstractChannel] = {}
        self.locks: dict[PoolKey, asyncio.Lock] = {}

    async def channel(self, broker: BrokerTarget, password: str, owner: str, timeout: float) -> tuple[AbstractChannel, PoolKey]:
        """An open confirm-mode channel of `owner` on a connection to an allowed address of the
        broker (connecting or reconnecting as needed); and the connection's key."""
        addresses = await http.allowed_addresses(broker.target)
        key = pool_key(broker, addresses[0], password)
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:  # one connect, and one channel per owner, at a time
            channel = self.channels.get((key, owner))
            if channel is not None and not channel.is_closed and usable(self.connections.get(key)):
                return channel, key
            connection = self.connections.get(key)
            if not usable(connection):
                self.evict(key)
                connection = self.connections[key] = await connect(broker, addresses, password, timeout)
            try:
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            except Exception:
                self.evict(key)  # a connection that cannot open a channel is not kept
                raise
            self.channels[(key, owner)] = channel
            return channel, key

    def evict(self, key: PoolKey) -> None:
        """Drop a connection that failed (the broker restarted, a socket died) and its channels;
        the next publish connects anew."""
        connection = self._forget(key)
        if connection is not None and not connection.is_closed:
            asyncio.get_running_loop().create_task(_close_quietly(connection))

    def _forget(self, key: PoolKey) -> AbstractConnection | None:
        for channel_key in [k for k in self.channels if k[0] == key]:
            del self.channels[channel_key]
        return self.connections.pop(key, None)

    async def close(self) -> None:
        for connection in list(self.connections.values()):
            await _close_quietly(connection)
        self.connections.clear()
        self.channels.clear()


def usable(connection: AbstractConnection | None) -> bool:
    """Open on both levels: aio-pika's connection does not always notice that the socket under
    it closed (a broker that shut down), aiormq's does."""
    if connection is None or connection.is_closed:
        return False
    transport = connection.transport
    return transport is not None and not transport.connection.is_closed


async def _close_quietly(connection: AbstractConnection) -> None:
    try:
        await connection.close()
    except Exception:  # closing a dead connection: nothing more to do
        logger.debug("closing a broker connection failed", exc_info=True)


async def connect(broker: BrokerTarget, addresses: list, password: str, timeout: float) -> AbstractConnection:
    """A connection to the first of `addresses` that answers (each already allowed by the policy)."""
    failure: Exception | None = None
    for address in addresses:
        try:
            return await aio_pika.connect(
                host=str(address),
                port=broker.port,
                login=broker.user,
                password=password,
                virtualhost=broker.vhost,
                ssl=broker.tls,
                timeout=timeout,
                connection_class=_Connection,
                client_properties={"connection_name": APP_ID},
                **({"server_hostname": broker.host} if broker.tls else {}),
            )
        except (OSError, aiormq.exceptions.AMQPConnectionError) as exc:
            failure = exc
    raise failure


_POOL: PerProcess[Pool] = PerProcess(Pool)


def pool() -> Pool:
    """This process's pool; a forked child (a Celery pool process) makes its own."""
    return _POOL.get()


def amqp_message(message: BrokerMessage) -> aio_pika.Message:
    """Persistent, JSON, with the format's signature headers as message headers."""
    return aio_pika.Message(
        message.body,
        headers={name: value for name, value in message.headers.items() if name.lower() not in PROPERTY_HEADERS},
        content_type="application/json",
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        type=message.type,
        timestamp=message.timestamp,
        app_id=APP_ID,
    )


async def publish(message: BrokerMessage) -> http.OutboundResult:
    """Publish one message and wait for the broker's confirm; never raises, every failure is in
    `result.error`, success is `result.confirmed`."""
    timeout = settings.AGENTBOT_HTTP_TIMEOUT if message.timeout is None else message.timeout
    started = time.monotonic()
    result = http.OutboundResult()
    key, stage = None, "connecting to the broker"
    try:
        async with asyncio.timeout(timeout):
            broker = broker_url_parse(message.url)
            channel, key = await pool().channel(broker, message.password, message.channel_owner, timeout)
            stage = "no confirm from the broker"
            exchange = (
                channel.default_exchange if not message.exchange else await channel.get_exchange(message.exchange, ensure=False)
            )
            await exchange.publish(amqp_message(message), routing_key=message.routing_key, mandatory=True)
        result.confirmed = True
        result.body = f"confirmed by the broker ({message.where()})".encode()
    except Exception as exc:  # every failure is the attempt's reason; none may escape the engine
        if key is not None and not isinstance(exc, MESSAGE_FAILURES):
            pool().evict(key)  # the connection itself may be dead: the next attempt connects anew
        result.error = scrub(failure_reason(exc, message, timeout, stage), message.password)
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


# Failures of one message or one channel, on a connection that is still fine.
MESSAGE_FAILURES = (aiormq.exceptions.DeliveryError, aiormq.exceptions.ChannelClosed)


def failure_reason(exc: BaseException, message: BrokerMessage, timeout: float, stage: str = "") -> str:
    """What the attempt log says of a failed publish (`stage`: what a timeout was waiting for)."""
    if isinstance(exc, UrlNotAllowed):
        return f"refused: {exc}"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"timed out after {timeout:g} s ({stage or 'waiting for the broker'}; {message.where()})"
    if isinstance(exc, aiormq.exceptions.PublishError):
        returned = exc.message.delivery
        return (
            f"unroutable ({returned.reply_text}, {returned.reply_code}): the broker returned the message, "
            f"no queue is bound for {message.where()}"
        )
    if isinstance(exc, aiormq.exceptions.DeliveryError) and isinstance(exc.frame, (Basic.Nack, Basic.Reject)):
        return f"nack: the broker refused the message ({message.where()})"
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
        return f"authentication failed: the broker refused the user name or password ({_text(exc)})"
    if isinstance(exc, aiormq.exceptions.ChannelClosed):
        return f"channel closed by the broker: {_text(exc)}"
    if isinstance(exc, RuntimeError) and "closed" in str(exc):  # aiormq's word for a connection gone
        return "connection closed: the broker went away"
    if isinstance(exc, (aiormq.exceptions.ConnectionClosed, aiormq.exceptions.ChannelInvalidStateError)):
        return f"connection closed: {_text(exc) or 'the broker went away'}"
    if isinstance(exc, aiormq.exceptions.InvalidFrameError) and "Connection.Close" in _text(exc):
        return "connection refused by the broker at login: the virtual host does not exist or the user may not use it"
    if isinstance(exc, (OSError, aiormq.exceptions.AMQPConnectionError)):
        return f"connection failed: {_os_text(exc)} ({_host_port(message.url)})"
    if isinstance(exc, aiormq.exceptions.AMQPError):
        return f"broker error: {type(exc).__name__}: {_text(exc)}"
    logger.error("publishing to a broker failed", exc_info=(type(exc), exc, exc.__traceback__))
    return f"internal error: {type(exc).__name__}"


def _os_text(exc: BaseException) -> str:
    """`Connection refused` of an OSError's (errno, text), as the socket said it."""
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return str(args[1])
    return _text(exc)


def _host_port(url: str) -> str:
    try:
        broker = broker_url_parse(url)
    except UrlNotAllowed:
        return "?"
    return f"{broker.host}:{broker.port}"


def _text(exc: BaseException) -> str:
    args = [str(a) for a in getattr(exc, "args", ()) if a not in (None, "")]
    text = ", ".join(args) or str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


# A password at least this long is masked wherever it appears; a shorter one only where it is a
# URL's password (`:<password>@`): a one-character password must not mask that character
# everywhere in the line.
SCRUB_ANYWHERE_CHARS = 8


def scrub(text: str, password: str) -> str:
    """Whatever a library's error says, it never carries the password (nor its URL-encoded form)
    in a URL; a password of SCRUB_ANYWHERE_CHARS or more is masked wherever it appears."""
    if password:
        for form in {password, quote(password, safe="")}:
            if len(form) >= SCRUB_ANYWHERE_CHARS:
                text = text.replace(form, MASKED_PASSWORD)
            else:
                text = re.sub(f"(?<=:){re.escape(form)}(?=@)", MASKED_PASSWORD, text)
    return text


def pool_stop() -> None:
    """Close this process's broker connections (a worker's shutdown)."""
    running = _POOL.current()
    if running is not None:
        try:
            asyncio.run_coroutine_threadsafe(running.close(), http.client().loop).result(timeout=5)
        except Exception:  # a broker that does not answer the close: the process ends all the same
            logger.warning("broker connections did not close in time", exc_info=True)
        _POOL.forget()
