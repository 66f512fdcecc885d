"""CPU and wall time of `event_publish`, the way the domain calls it (one transaction per event).

    .venv/bin/python bench/publish_profile.py [--events 500] [--webhooks 10] [--cprofile FILE]

Uses the benchmark's database (BENCH_DATABASE_URL) and broker, no worker: the hand-offs go to the
broker and are flushed afterwards. Prints one JSON line: CPU (process time, the hand-off thread
included) and wall time per event, with and without --cprofile's overhead.
"""

import argparse
import cProfile
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--webhooks", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--cprofile", type=Path, default=None, help="write cProfile stats of the timed loop here")
    args = parser.parse_args()
    harness.configure_environment(http_timeout=5.0)
    harness.database_create()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, skip_checks=True)
    from bench import scenarios
    from deliveries.engine import outbox

    class NoReceiver:
        def url(self, name: str, *, hang: bool = False) -> str:
            return f"http://127.0.0.1:9/hook/{name}"

    scenarios.tables_reset()
    site, _ = scenarios.site_with_webhooks(NoReceiver(), args.webhooks)
    for _ in range(args.warmup):
        scenarios.publish_one(site)
    outbox.this_process().flush(timeout=10)
    profiler = cProfile.Profile(time.thread_time) if args.cprofile else None  # CPU of this thread
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for _ in range(args.events):
        scenarios.publish_one(site)
    outbox.this_process().flush(timeout=10)
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.cprofile)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    harness.broker_flush()
    scenarios.tables_reset()
    print(
        json.dumps(
            {
                "events": args.events,
                "webhooks": args.webhooks,
                "profiled": bool(profiler),
                "cpu_ms_per_event": round(cpu / args.events * 1000, 3),
                "wall_ms_per_event": round(wall / args.events * 1000, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
