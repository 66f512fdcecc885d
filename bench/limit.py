"""The machine's limit: a plain aiohttp client, N concurrent keep-alive POSTs, HMAC per request.

No database, no queue: the same signed body as a delivery, sent as fast as the receiver takes it.
Prints one JSON line: {"requests", "seconds", "per_second", "errors"}.
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import time

import aiohttp

SECRET = b"whsec_benchmark-limit-secret"
# The event data every benchmark run publishes (bench/scenarios.py), so both send the same bytes.
MESSAGE = {
    "conversation_id": "conv_bench",
    "message_id": "msg_bench",
    "sender_type": "visitor",
    "body": "Hi, what's your pricing?",
    "visitor_email": None,
    "visitor_name": None,
}
BODY = json.dumps(
    {"event": "message.created", "timestamp": "2025-01-01T00:00:00Z", "site_id": "site_bench", "data": MESSAGE},
    separators=(",", ":"),
).encode()


async def run(url: str, count: int, concurrency: int) -> dict:
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    errors = 0
    sequence = iter(range(count))

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for n in sequence:
            stamp = str(int(time.time()))
            signature = hmac.new(SECRET, stamp.encode() + b"." + BODY, hashlib.sha256).hexdigest()
            headers = {
                "Content-Type": "application/json",
                "X-Agentbot-Event": "message.created",
                "X-Agentbot-Signature": f"t={stamp},v1={signature}",
                "X-Agentbot-Delivery-Id": f"limit_{n}",
            }
            try:
                async with session.post(url, data=BODY, headers=headers, allow_redirects=False) as response:
                    await response.content.read(16 * 1024)
                    if response.status != 200:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1

    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(sender(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {"requests": count, "seconds": seconds, "per_second": count / seconds, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.url, args.count, args.concurrency))), flush=True)


if __name__ == "__main__":
    main()
