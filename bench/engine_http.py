"""The engine's HTTP request alone: CPU per request of `Job.send` (signing, the URL policy and
the request on the engine's own client and event loop) against bench/receiver.py in its own process,
with N requests in flight. No database, no queue, no other thread: what one delivery's request
costs a worker's event loop at best. bench/limit.py is the same against a plain aiohttp client.

    .venv/bin/python bench/engine_http.py --requests 20000 --in-flight 4,16,64

Prints one JSON line per in-flight count: CPU µs per request and requests per second, the best
and worst of --runs runs.
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Receiver, configure_environment  # noqa: E402
from bench.limit import BODY  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--in-flight", default="4,16,64")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=8797)
    args = parser.parse_args()

    configure_environment(http_timeout=10)
    import django

    django.setup()
    from deliveries.engine import http
    from deliveries.engine.engine import Job

    receiver = Receiver(args.port)
    url = receiver.url("engine-http")

    def job(n: int) -> Job:
        return Job(
            delivery_id=f"dlv_bench_{n}",
            token="bench",
            webhook_id="wh_bench",
            event_id="evt_bench",
            url=url,
            format="agentbot",
            event_type="message.created",
            body=BODY,
            secrets=["whsec_benchmark-engine-http"],
            attempt_count=0,
            schedule_position=0,
        )

    async def send_all(count: int, in_flight: int) -> int:
        numbers, failed = iter(range(count)), 0

        async def sender() -> None:
            nonlocal failed
            for n in numbers:
                result = await job(n).send()
                failed += result.status_code != 200

        await asyncio.gather(*(sender() for _ in range(in_flight)))
        return failed

    client = http.client()
    try:
        client.run(send_all(2000, 16))  # connections open, code warm
        for in_flight in [int(n) for n in args.in_flight.split(",")]:
            runs = []
            for _ in range(args.runs):
                cpu, wall = time.process_time(), time.monotonic()
                failed = client.run(send_all(args.requests, in_flight))
                cpu, wall = time.process_time() - cpu, time.monotonic() - wall
                runs.append((cpu / args.requests * 1e6, args.requests / wall, failed))
            print(
                json.dumps(
                    {
                        "in_flight": in_flight,
                        "requests": args.requests,
                        "cpu_us_per_request": [round(min(r[0] for r in runs), 1), round(max(r[0] for r in runs), 1)],
                        "per_second": [round(min(r[1] for r in runs)), round(max(r[1] for r in runs))],
                        "failed": sum(r[2] for r in runs),
                    }
                ),
                flush=True,
            )
    finally:
        receiver.close()


if __name__ == "__main__":
    main()
