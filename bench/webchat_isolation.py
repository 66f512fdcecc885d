"""Does the webchat starve the REST API? POST /api/v1/events latency on one uvicorn process, idle
and beside webchat visitors whose language model answers in 3 s.

    BENCH_DATABASE_URL=postgres://…/agentbot_bench BENCH_BROKER_URL=redis://…/9 \
        .venv/bin/python bench/webchat_isolation.py [--visitors 40] [--publishers 16]

Each visitor sends a message every 4 s (a person's pace), each publisher POSTs events one after
another with 50 ms between them. Prints one JSON line: p50/p95/max of a publish, idle and busy,
and busy p95 / idle p95 (the target: at most 2). The server runs with its default pool
(AGENTBOT_DB_POOL_MAX, 8) and webchat threads (AGENTBOT_WEBCHAT_THREADS, 16).
"""

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness  # noqa: E402


def summary(values: list[float]) -> dict:
    cuts = statistics.quantiles(values, n=100)
    return {
        "n": len(values),
        "p50_ms": round(cuts[49] * 1000, 1),
        "p95_ms": round(cuts[94] * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


def publishes(url: str, key: str, *, publishers: int, each: int) -> list[float]:
    import requests

    times: list[float] = []

    def publish():
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {key}"
            for _ in range(each):
                started = time.monotonic()
                http.post(f"{url}/api/v1/events", json={"event": "webhook.test", "data": {"message": "bench"}}, timeout=60)
                times.append(time.monotonic() - started)
                time.sleep(0.05)

    threads = [threading.Thread(target=publish) for _ in range(publishers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=40)
    parser.add_argument("--publishers", type=int, default=16)
    parser.add_argument("--each", type=int, default=25, help="publishes per publisher, idle and busy")
    parser.add_argument("--model-seconds", type=float, default=3.0)
    args = parser.parse_args()
    harness.configure_environment(http_timeout=5.0)
    harness.database_create()
    harness.broker_flush()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, skip_checks=True)
    from core.models import Site
    from core.services import api_key_create
    from inbound import integrations
    from tests.support.asgi_server import AsgiServer
    from tests.support.fake_chat2desk import FakeCompletions
    from tests.support.webchat_client import Visitor

    shop = "https://shop.example"
    site = Site.objects.create(name="bench webchat")
    webchat = integrations.integration_create(site=site, connector_type="webchat", name="chat", allowed_origins=shop)
    _, key = api_key_create(site=site)
    model = FakeCompletions(lambda messages: (time.sleep(args.model_seconds), "We open at nine.")[1])
    # Every visitor comes from 127.0.0.1 here: no per-address cap on connections.
    server = AsgiServer(
        Path(tempfile.mkdtemp()),
        AGENTBOT_LLM_BASE_URL=model.url + "/v1",
        AGENTBOT_WEBCHAT_MAX_CONNECTIONS_PER_ADDRESS="0",
        LOG_LEVEL="WARNING",
    )
    visitors: list = []
    try:
        publishes(server.url, key, publishers=2, each=5)  # warm up
        idle = publishes(server.url, key, publishers=args.publishers, each=args.each)
        stop = threading.Event()

        def chat(visitor, first: float):
            stop.wait(first)
            while not stop.is_set():
                try:
                    visitor.send("When do you open?", timeout=30)
                except Exception:  # noqa: BLE001 - a refused or slow message is counted by the model's calls
                    pass
                stop.wait(4.0)

        for _ in range(args.visitors):
            visitors.append(Visitor())
            visitors[-1].connect(server.url, webchat.id, origin=shop)
        chatters = [threading.Thread(target=chat, args=(v, n * 4.0 / args.visitors)) for n, v in enumerate(visitors)]
        for thread in chatters:
            thread.start()
        time.sleep(4.0 + args.model_seconds)
        busy = publishes(server.url, key, publishers=args.publishers, each=args.each)
        stop.set()
        for thread in chatters:
            thread.join(timeout=30)
        result = {
            "visitors": args.visitors,
            "publishers": args.publishers,
            "model_seconds": args.model_seconds,
            "model_calls": len(model.calls),
            "idle": summary(idle),
            "busy": summary(busy),
        }
        result["p95_ratio"] = round(result["busy"]["p95_ms"] / result["idle"]["p95_ms"], 2)
        print(json.dumps(result), flush=True)
    finally:
        for visitor in visitors:
            visitor.close()
        server.stop()
        model.server.shutdown()


if __name__ == "__main__":
    main()
