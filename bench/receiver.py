"""A fast local webhook receiver for the benchmark: its own process, plain asyncio, HTTP/1.1 keep-alive.

    POST /hook/<name>   200 {"ok":true}; the arrival is recorded
    POST /hang/<name>   recorded, never answered (the sender's timeout ends it)
    GET  /_count        {"count": n}
    GET  /_dump         every arrival as [unix time, delivery id, path] (JSON lines)
    POST /_reset        forget every arrival

No Django, no framework: the receiver must cost as little CPU as possible so that it measures the
sender, not itself.
"""

import argparse
import asyncio
import json
import os
import time

OK_BODY = b'{"ok":true}'
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(OK_BODY), OK_BODY)
DELIVERY_ID = b"\r\nx-agentbot-delivery-id:"
CONTENT_LENGTH = b"\r\ncontent-length:"

arrivals: list[tuple[float, str, str]] = []


def header(lowered_head: bytes, head: bytes, name: bytes) -> bytes:
    at = lowered_head.find(name)
    if at < 0:
        return b""
    start = at + len(name)
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


def reply(body: bytes, status: bytes = b"200 OK") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)


class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            lowered = head.lower()
            length = int(header(lowered, head, CONTENT_LENGTH) or 0)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            self.handle(head, lowered)

    def handle(self, head: bytes, lowered: bytes) -> None:
        method, path = head.split(b" ", 2)[:2]
        if path.startswith(b"/hook/") or path.startswith(b"/hang/"):
            delivery_id = header(lowered, head, DELIVERY_ID).decode()
            arrivals.append((time.time(), delivery_id, path.decode()))
            if path.startswith(b"/hook/"):
                self.transport.write(OK)
            return
        if path == b"/_count":
            self.transport.write(reply(json.dumps({"count": len(arrivals)}).encode()))
        elif path == b"/_dump":
            body = "\n".join(json.dumps(a) for a in arrivals).encode()
            self.transport.write(reply(body))
        elif path == b"/_reset":
            arrivals.clear()
            self.transport.write(reply(b"{}"))
        else:
            self.transport.write(reply(b"{}", b"404 Not Found"))


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, "127.0.0.1", port, backlog=4096, reuse_address=True)
    print(f"receiver listening on 127.0.0.1:{port} (pid {os.getpid()})", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
