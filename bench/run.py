"""The delivery engine's benchmark: `make bench` (or `.venv/bin/python bench/run.py --help`).

Starts its own receiver and Celery worker (with beat) on PostgreSQL database `agentbot_bench` and
Redis db 9 (BENCH_DATABASE_URL / BENCH_BROKER_URL override them), runs the issue's six measures and
prints one table: throughput, latency, isolation, backlog, memory, and the plain-client limit that
every rate is compared with. Each run gets empty tables and a fresh worker; medians of --runs.
`api` (bench/api.py) publishes through the REST API of the service as `make run` starts it, with
its own plain-client limit in each run: `make bench BENCH_ARGS="--only api --runs 3"`.
"""

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness  # noqa: E402

MEASURES = ("limit", "throughput", "latency", "isolation", "backlog", "api", "ordered")
# The ordered runs (docs/ordering.md): one webhook, the same events and receiver; unordered, ordered
# by key over --ordered-keys keys, and ordered by key with every event on one (hot) key.
ORDERED_RUNS = (("ordered_none", "none", None), ("ordered_keys", "key", None), ("ordered_hot", "key", 1))


class StepFailed(Exception):
    pass


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the webhook delivery engine.")
    parser.add_argument("--quick", action="store_true", help="one short run of each measure (about 2 minutes)")
    parser.add_argument("--only", default=",".join(MEASURES), help=f"comma-separated subset of {','.join(MEASURES)}")
    parser.add_argument("--runs", type=int, default=None, help="repetitions of each measure (default 3, quick 1)")
    parser.add_argument("--events", type=int, default=None, help="events per throughput run (default 2000)")
    parser.add_argument("--latency-seconds", type=float, default=None, help="length of the steady run (default 30)")
    parser.add_argument("--backlog", type=int, default=None, help="waiting deliveries for the sweep (default 1,000,000)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker pool size (default 2, as `make run`)")
    parser.add_argument("--pool", default=None, help="worker pool (default: the project's CELERY_WORKER_POOL)")
    parser.add_argument("--nodes", type=int, default=1, help="worker nodes (processes) to start, the first with beat")
    parser.add_argument("--publishers", type=int, default=4, help="publishing threads in the benchmark process")
    parser.add_argument("--http-timeout", type=float, default=5.0, help="AGENTBOT_HTTP_TIMEOUT for the workers")
    parser.add_argument("--run-limit", type=float, default=120.0, help="cut a run short after this many seconds")
    parser.add_argument("--port", type=int, default=8765, help="the receiver's port on 127.0.0.1")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the workers; collapsed stacks to this folder")
    parser.add_argument(
        "--profile-mode",
        choices=("idle", "cpu", "gil"),
        default="idle",
        help="py-spy samples: every thread (idle, shares of wall time), threads on a CPU, or the GIL holder",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every raw figure to this file")
    parser.add_argument("--api-events", type=int, default=1000, help="events published through the API per run (default 1000)")
    parser.add_argument("--api-clients", default="16,64", help="concurrent HTTP clients of the api runs (default 16,64)")
    parser.add_argument("--web-port", type=int, default=8790, help="the port of the service the api runs start")
    parser.add_argument("--ordered-keys", type=int, default=100, help="ordering keys of the ordered runs (default 100)")
    parser.add_argument(
        "--ordered-events",
        type=int,
        default=None,
        help="events per ordered run (default --events; the hot key's are sent one by one)",
    )
    parser.add_argument(
        "--api-batch", type=int, default=100, help="events per POST /api/v1/events/batch in the api runs (0: no batch runs)"
    )
    parser.add_argument("--api-batch-events", type=int, default=5000, help="events of each batch run (default 5000)")
    args = parser.parse_args()
    args.only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = set(args.only) - set(MEASURES)
    if unknown:
        parser.error(f"unknown measure(s) {', '.join(sorted(unknown))}; choose from {', '.join(MEASURES)}")
    args.runs = args.runs or (1 if args.quick else 3)
    args.events = args.events or (500 if args.quick else 2000)
    args.latency_seconds = args.latency_seconds or (10.0 if args.quick else 30.0)
    args.backlog = args.backlog or (100_000 if args.quick else 1_000_000)
    args.api_clients = [int(c) for c in args.api_clients.split(",") if c.strip()]
    args.ordered_events = args.ordered_events or args.events
    return args


def med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def spread(runs: list[dict], key: str, fmt: str) -> str:
    values = [r[key] for r in runs]
    return f"{fmt.format(min(values))}–{fmt.format(max(values))}" if len(values) > 1 else ""


class Table:
    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self.rows: list[tuple[str, str, str, str, str]] = []

    def rate(self, label: str, runs: list[dict], target: str = "", key: str = "per_second") -> None:
        value = med(runs, key)
        share = f"{value / self.limit:.0%}" if self.limit else "—"
        self.rows.append((label, f"{value:,.0f}/s", spread(runs, key, "{:,.0f}"), share, target))

    def plain(self, label: str, value: str, noise: str = "", target: str = "") -> None:
        self.rows.append((label, value, noise, "—", target))

    def print(self) -> None:
        head = ("measure", "median", "min–max", "of limit", "target")
        widths = [max(len(r[i]) for r in self.rows + [head]) for i in range(5)]
        line = "  ".join(f"{{:<{w}}}" for w in widths)
        print()
        print(line.format(*head))
        print(line.format(*("-" * w for w in widths)))
        for row in self.rows:
            print(line.format(*row))


def main() -> None:
    args = parse_args()
    # Stop cleanly (workers and receiver included) on Ctrl-C or a TERM, even when started in the background.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    harness.configure_environment(http_timeout=args.http_timeout)
    harness.database_create()
    import django

    django.setup()
    from django.core.management import call_command

    from bench import api, scenarios

    call_command("migrate", verbosity=0, skip_checks=True)
    log_dir = Path(tempfile.mkdtemp(prefix="agentbot-bench-"))
    print(f"logs in {log_dir}; database {harness.DATABASE_URL}; broker {harness.BROKER_URL}", flush=True)
    receiver = harness.Receiver(args.port)
    ctx = scenarios.Context(
        receiver=receiver,
        log_dir=log_dir,
        concurrency=args.concurrency,
        pool=args.pool,
        publishers=args.publishers,
        settle_timeout=max(30.0, 3 * args.http_timeout),
        run_limit=args.run_limit,
        profile_dir=args.profile,
        profile_mode=args.profile_mode,
        nodes=args.nodes,
    )
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}}

    def step(name: str, fn, *a, **kw) -> dict:
        started = time.monotonic()
        try:
            out = fn(*a, **kw)
        except Exception as exc:  # report what did run; say what failed
            print(f"  {name}: FAILED: {exc!r}", flush=True)
            raise StepFailed from exc
        shown = {k: v for k, v in out.items() if k not in ("plan", "rss_mb")} if isinstance(out, dict) else out
        print(f"  {name}: {json.dumps(shown, default=str)[:300]} ({time.monotonic() - started:.0f} s)", flush=True)
        return out

    def run_once(measure: str, n: int) -> None:
        if measure == "limit":
            results.setdefault("limit", []).append(step(f"limit #{n}", scenarios.limit, receiver, count=10 * args.events))
        elif measure == "throughput":
            out = step(f"10 webhooks #{n}", scenarios.burst, ctx, events=args.events, webhooks=10)
            results.setdefault("throughput_10", []).append(out)
            if "throughput" in args.only:
                out = step(f"1 webhook #{n}", scenarios.burst, ctx, events=args.events, webhooks=1)
                results.setdefault("throughput_1", []).append(out)
        elif measure == "latency":
            out = step(f"steady #{n}", scenarios.steady, ctx, rate=200, webhooks=5, seconds=args.latency_seconds)
            results.setdefault("latency", []).append(out)
        elif measure == "isolation":
            out = step(f"one hanging #{n}", scenarios.burst, ctx, events=args.events, webhooks=10, hanging=1)
            results.setdefault("isolation", []).append(out)
        elif measure == "backlog":
            sizes = sorted({min(1_000, args.backlog), args.backlog})
            results["backlog"] = step("sweep", scenarios.backlog, ctx, sizes=sizes)
        elif measure == "api":
            count = 10 * max(args.api_events, args.api_batch_events if args.api_batch else 0)
            limit = step(f"api limit #{n}", scenarios.limit, receiver, count=count)["per_second"]
            runs = step(
                f"api #{n}",
                api.measure,
                receiver,
                log_dir / f"api-{n}",
                events=args.api_events,
                clients=args.api_clients,
                limit=limit,
                port=args.web_port,
                batches=[0, args.api_batch] if args.api_batch else [0],
                batch_events=args.api_batch_events,
            )
            for out in runs:
                name = f"api_{out['clients']}" + ("_batch" if out["batch"] else "")
                results.setdefault(name, []).append({**out, "limit": limit})
        elif measure == "ordered":
            for name, ordering, keys in ORDERED_RUNS:
                keys = keys or args.ordered_keys
                out = step(
                    f"{name} #{n}", scenarios.burst, ctx, events=args.ordered_events, webhooks=1, ordering=ordering, keys=keys
                )
                results.setdefault(name, []).append(out)

    try:
        for measure in MEASURES:
            if measure not in args.only and not (measure == "throughput" and "isolation" in args.only):
                continue
            print(f"{measure}:", flush=True)
            for n in range(1, (args.runs if measure != "backlog" else 1) + 1):
                try:
                    run_once(measure, n)
                except StepFailed:
                    continue
    finally:
        receiver.close()
    report(args, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


def report(args: argparse.Namespace, results: dict) -> None:
    limit = med(results["limit"], "per_second") if "limit" in results else None
    table = Table(limit)
    if limit:
        table.rate("limit: plain aiohttp, 64 concurrent, HMAC", results["limit"])
    ev = f"{args.events:,}"
    if "throughput_10" in results:
        table.rate(f"1 throughput {ev} events × 10 webhooks", results["throughput_10"], "≥ 25% of limit")
    if any(r["deliveries"] < r["expected"] for r in results.get("throughput_10", [])):
        table.rate("1 … to the last attempt recorded (runs were cut)", results["throughput_10"], key="per_second_recorded")
    if "throughput_1" in results:
        table.rate(f"1 throughput {ev} events × 1 webhook", results["throughput_1"])
    if "latency" in results:
        runs = results["latency"]
        for p in ("p50", "p95", "p99"):
            target = {"p50": "< 20 ms", "p99": "< 100 ms"}.get(p, "")
            table.plain(
                f"2 latency {p}, 200 ev/s × 5 webhooks, commit → receipt",
                f"{med(runs, p + '_ms'):.1f} ms",
                spread(runs, p + "_ms", "{:.1f}"),
                target,
            )
    if "isolation" in results and "throughput_10" in results:
        healthy = [dict(r, per_second=r["per_second"] * 0.9) for r in results["throughput_10"]]  # nine of ten
        iso = results["isolation"]
        table.rate("3 isolation: healthy nine, all healthy", healthy)
        table.rate(
            "3 isolation: healthy nine, one hanging", iso, f"≥ 90%: {med(iso, 'per_second') / med(healthy, 'per_second'):.0%}"
        )
        table.plain(
            "3 isolation: p99 all healthy → one hanging",
            f"{med(healthy, 'p99_ms'):.0f} → {med(iso, 'p99_ms'):.0f} ms",
            spread(iso, "p99_ms", "{:.0f}"),
            f"≤ 2×: {med(iso, 'p99_ms') / med(healthy, 'p99_ms'):.2f}×",
        )
    if "backlog" in results:
        for size, b in results["backlog"].items():
            table.plain(f"4 sweep, {size:,} waiting, nothing due", f"{b['idle_ms']:.2f} ms")
            table.plain(f"4 sweep, {size:,} waiting, 100 due", f"{b['due_ms']:.2f} ms", "", "< 50 ms")
    if "throughput_10" in results:
        peaks = [max(r["rss_mb"].values()) for r in results["throughput_10"] if r["rss_mb"]]
        if peaks:
            table.plain(
                "5 peak RSS of a worker process (run 1)",
                f"{statistics.median(peaks):.0f} MB",
                f"{min(peaks):.0f}–{max(peaks):.0f}" if len(peaks) > 1 else "",
                "< 200 MB",
            )
    api_runs = [results[f"api_{c}"] for c in args.api_clients if results.get(f"api_{c}")]
    if api_runs:
        table.plain(
            "6 API plain-client limit (the api runs' own)",
            f"{med(api_runs[0], 'limit'):,.0f}/s",
            spread(api_runs[0], "limit", "{:,.0f}"),
        )
    for clients in args.api_clients:
        runs = results.get(f"api_{clients}", [])
        if not runs:
            continue
        ev = f"{args.api_events:,}"
        table.plain(
            f"6 API publish, {clients} clients, {ev} events",
            f"{med(runs, 'publish_per_second'):,.0f}/s",
            spread(runs, "publish_per_second", "{:,.0f}"),
        )
        table.plain(
            f"6 API end to end, {clients} clients, × 10 webhooks",
            f"{med(runs, 'per_second'):,.0f}/s",
            spread(runs, "per_second", "{:,.0f}"),
            f"≥ 25% of limit: {med(runs, 'of_limit'):.0%}",
        )
        table.plain(
            f"6 API 5xx responses, {clients} clients (all runs)",
            f"{sum(r['status_5xx'] + r['no_response'] for r in runs)}",
            "",
            "0",
        )
        table.plain(
            f"6 API peak PostgreSQL connections, {clients} clients",
            f"{max(r['peak_connections'] for r in runs)}",
            spread(runs, "peak_connections", "{:.0f}"),
        )
        table.plain(
            f"6 API web CPU per publish, {clients} clients",
            f"{med(runs, 'web_cpu_ms_per_publish'):.1f} ms",
            spread(runs, "web_cpu_ms_per_publish", "{:.1f}"),
        )
    if "ordered_none" in results:
        ev, keys = f"{args.ordered_events:,}", args.ordered_keys
        none = med(results["ordered_none"], "per_second")
        table.rate(f"7 ordering none: {ev} events × 1 webhook", results["ordered_none"])
        if "ordered_keys" in results:
            share = med(results["ordered_keys"], "per_second") / none
            table.rate(f"7 ordering key: {keys} keys", results["ordered_keys"], f"≥ 50% of none: {share:.0%}")
        if "ordered_hot" in results:
            table.rate("7 ordering key: one hot key", results["ordered_hot"])
        late = sum(r["out_of_order"] for name in ("ordered_keys", "ordered_hot") for r in results.get(name, []))
        table.plain("7 ordered deliveries that arrived out of order (all runs)", f"{late}", "", "0")
    for clients in args.api_clients:
        runs = results.get(f"api_{clients}_batch", [])
        if not runs:
            continue
        what = f"{clients} clients, batches of {args.api_batch}"
        table.plain(
            f"6 API batch publish, {what}",
            f"{med(runs, 'publish_per_second'):,.0f} events/s",
            spread(runs, "publish_per_second", "{:,.0f}"),
        )
        table.plain(
            f"6 API batch end to end, {what}, × 10 webhooks",
            f"{med(runs, 'per_second'):,.0f}/s",
            spread(runs, "per_second", "{:,.0f}"),
            f"≥ 40% of limit: {med(runs, 'of_limit'):.0%}",
        )
        table.plain(
            f"6 API batch web CPU per event, {what}",
            f"{med(runs, 'web_cpu_ms_per_publish'):.2f} ms",
            spread(runs, "web_cpu_ms_per_publish", "{:.2f}"),
        )
    runs = [r for name in ("throughput_10", "throughput_1", "latency", "isolation") for r in results.get(name, [])]
    runs += [
        r for clients in args.api_clients for r in results.get(f"api_{clients}", []) + results.get(f"api_{clients}_batch", [])
    ]
    if runs:
        loads = [r["load_1m"] for r in runs]
        table.plain(
            "machine load (1-min average) at the end of each run",
            f"{statistics.median(loads):.1f}",
            f"{min(loads):.1f}–{max(loads):.1f}",
            f"{os.cpu_count()} cores",
        )
    table.print()
    for clients in args.api_clients:
        for r in results.get(f"api_{clients}", []) + results.get(f"api_{clients}_batch", []):
            if r["deliveries"] < r["expected"] or r["stored_without_201"] or r["events_stored"] != r["accepted"] or r["failures"]:
                print(
                    f"! api, {clients} clients: {r['accepted']} accepted, {r['events_stored']} stored, "
                    f"{r['deliveries']}/{r['expected']} delivered; statuses {r['statuses']}; {r['failures'][:2]}"
                )
    for name in ("throughput_10", "throughput_1", "latency", "isolation", *(r[0] for r in ORDERED_RUNS)):
        runs = results.get(name, [])
        if any(r["deliveries"] < r["expected"] or r["duplicates"] for r in runs):
            print(
                f"! {name}: "
                + "; ".join(f"{r['deliveries']}/{r['expected']} recorded, {r['duplicates']} duplicates" for r in runs)
            )
            for r in runs:
                if r.get("unfinished"):
                    print(f"  unfinished when the run was cut: {r['unfinished']}")
    if "throughput_10" in results:
        rss = results["throughput_10"][-1]["rss_mb"]
        print("\nRSS per worker process, last run 1: " + ", ".join(f"pid {p}: {m:.0f} MB" for p, m in sorted(rss.items())))
    if "backlog" in results:
        size = max(results["backlog"])
        print(f"\nThe sweep's claim with {size:,} waiting (EXPLAIN ANALYZE, 100 due):")
        print("\n".join("  " + line for line in results["backlog"][size]["plan"]))


if __name__ == "__main__":
    main()
