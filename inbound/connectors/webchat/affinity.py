"""The webchat's long-polling across several web processes on one host (AGENTBOT_WEB_WORKERS > 1).

An Engine.IO polling session lives in the process that opened it: its long-poll GETs and its
POSTs must reach that process, but the web processes share one port and the kernel hands each new
connection to any of them. So each process also listens on a private loopback port, records in
Redis which process holds each session it opens (`agentbot:webchat:eio:<sid>` → that port, for
as long as the session lives), and a request for a session held elsewhere is passed to its
holder and the answer passed back. A websocket upgrade that reaches another process is refused;
the client then stays on polling, which works. The websocket transport alone needs none of this.

Between hosts a load balancer must keep a polling client on one host (sticky sessions: a cookie,
the client's address, or the `sid` query parameter); docs/configuration.md says so.
"""

import asyncio
import logging
import socket
from urllib.parse import parse_qs

from django.conf import settings

logger = logging.getLogger(__name__)

KEY = "agentbot:webchat:eio:{}"
# Hop-by-hop headers are the connection's own, not the request's (RFC 9110 7.6.1).
HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te", b"trailer", b"host"}


def enabled() -> bool:
    return settings.AGENTBOT_WEB_WORKERS > 1 and settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))


class PollingAffinity:
    """ASGI middleware in front of the Socket.IO application (`app`, whose engine is `sio.eio`)."""

    def __init__(self, app, sio) -> None:
        self.app = app
        self.engine = sio.eio
        self.address = ""
        self._started: asyncio.Task | None = None
        self._redis = None
        self._ttl = int(self.engine.ping_interval + self.engine.ping_timeout) * 4
        connect, disconnect = sio._handle_eio_connect, sio._handle_eio_disconnect

        async def on_connect(eio_sid, environ):
            try:
                await self._listening()
            except Exception:  # the session still works when its requests reach this process
                logger.warning("webchat: the private listener did not start", exc_info=True)
            await self._remember(eio_sid)
            return await connect(eio_sid, environ)

        async def on_disconnect(eio_sid, reason):
            try:
                await self._client().delete(KEY.format(eio_sid))
            except Exception:
                logger.warning("webchat: could not forget a polling session's process", exc_info=True)
            return await disconnect(eio_sid, reason)

        sio.eio.on("connect", on_connect)
        sio.eio.on("disconnect", on_disconnect)

    def _client(self):
        if self._redis is None:
            import redis.asyncio

            self._redis = redis.asyncio.Redis.from_url(settings.CELERY_BROKER_URL)
        return self._redis

    async def _remember(self, sid: str) -> None:
        if not self.address:
            return
        try:
            await self._client().set(KEY.format(sid), self.address, ex=self._ttl)
        except Exception:
            logger.warning("webchat: could not record a polling session's process", exc_info=True)

    async def _listening(self) -> None:
        """The private loopback listener that serves requests passed on by the other processes."""
        if self._started is None or (self._started.done() and self._started.exception() is not None):
            self._started = asyncio.ensure_future(self._listen())
        await asyncio.shield(self._started)

    async def _listen(self) -> None:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(self.app, lifespan="off", log_level="warning", access_log=False, ws="none")
        config.load()
        server = uvicorn.Server(config)
        # Not serve(): that would take the signals of the process's own server.
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self.address = f"127.0.0.1:{sock.getsockname()[1]}"
        self._server = server

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or not scope.get("path", "").startswith("/socket.io"):
            return await self.app(scope, receive, send)
        sid = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("sid", [""])[0]
        if not sid or sid in self.engine.sockets:
            if sid and scope["type"] == "http":
                await self._remember(sid)  # the session lives on: keep its record as long
            return await self.app(scope, receive, send)
        try:
            holder = await self._client().get(KEY.format(sid))
        except Exception:
            logger.warning("webchat: could not look a polling session's process up", exc_info=True)
            holder = None
        holder = holder.decode() if holder else ""
        if not holder or holder == self.address:
            return await self.app(scope, receive, send)  # unknown here too: the engine says so
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            return await send({"type": "websocket.close", "code": 1008})  # the client stays on polling
        await self._pass_on(holder, scope, receive, send)

    async def _pass_on(self, holder: str, scope, receive, send) -> None:
        import aiohttp

        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"http://{holder}{scope['path']}" + (f"?{query}" if query else "")
        # A long poll is held until the next ping at most.
        timeout = aiohttp.ClientTimeout(total=self.engine.ping_interval + self.engine.ping_timeout + 10)
        try:
            async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
                async with session.request(
                    scope["method"], url, data=b"".join(chunks), headers=headers, allow_redirects=False
                ) as response:
                    body = await response.read()
                    out = [
                        (k.encode("latin-1"), v.encode("latin-1"))
                        for k, v in response.headers.items()
                        if k.lower().encode() not in HOP_BY_HOP and k.lower() != "content-length"
                    ]
                    out.append((b"content-length", str(len(body)).encode()))
                    await send({"type": "http.response.start", "status": response.status, "headers": out})
                    await send({"type": "http.response.body", "body": body})
        except (TimeoutError, aiohttp.ClientError):
            logger.warning("webchat: the process holding a polling session did not answer", exc_info=True)
            await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"the webchat session's process did not answer; reconnect"})
