"""The benchmark's runs. Each one starts from empty tables and fresh workers, publishes through the
real `event_publish` (one transaction per event, kicked on commit) and measures what the issue asks."""

import json
import os
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from bench.harness import PY, ROOT, Receiver, Workers, broker_flush, postgres_cpu_seconds
from bench.limit import MESSAGE
from core.models import Site
from deliveries.models import Delivery, Event
from deliveries.services.publish import event_publish
from deliveries.services.send import deliveries_sweep
from subscriptions.models import Webhook, generate_secret


@dataclass
class Context:
    receiver: Receiver
    log_dir: Path
    concurrency: int
    pool: str | None
    publishers: int
    settle_timeout: float
    run_limit: float
    worker_env: dict[str, str] = field(default_factory=dict)
    profile_dir: Path | None = None
    profile_mode: str = "idle"
    nodes: int = 1
    runs: int = 0

    def start_workers(self) -> Workers:
        self.runs += 1
        broker_flush()
        workers = Workers(
            self.log_dir / f"run-{self.runs}",
            concurrency=self.concurrency,
            pool=self.pool,
            extra_env=self.worker_env,
            nodes=self.nodes,
        )
        try:
            workers.wait_ready()
            if self.profile_dir:
                self.profile_dir.mkdir(parents=True, exist_ok=True)
                workers.profile(self.profile_dir / f"run-{self.runs}.txt", self.profile_mode)
        except BaseException:  # no worker may outlive its run: it would take the next run's tasks
            workers.stop()
            raise
        return workers


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


# --- setup ------------------------------------------------------------------------------------
def tables_reset() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE deliveries_attempt, deliveries_delivery, deliveries_event, subscriptions_webhook, agentbot_site CASCADE"
        )


def site_with_webhooks(receiver: Receiver, count: int, *, hanging: int = 0, ordering: str = "none") -> tuple[Site, list[Webhook]]:
    site = Site.objects.create(id="site_bench", name="Benchmark")
    hooks = [
        Webhook.objects.create(
            site=site,
            url=receiver.url(f"wh{n}", hang=n >= count - hanging),
            events=["*"],
            secret=generate_secret(),
            ordering=ordering,
        )
        for n in range(count)
    ]
    return site, hooks


# --- publishing -------------------------------------------------------------------------------
def publish_one(site: Site, key: str | None = None) -> tuple[str, float]:
    """Publish in its own transaction; returns the event id and the moment the commit returned."""
    stamp: list[float] = []
    with transaction.atomic():
        # Registered first, so it runs right after COMMIT and before the hand-off to Celery.
        transaction.on_commit(lambda: stamp.append(time.time()))
        event, _ = event_publish(site=site, event_type="message.created", data=MESSAGE, ordering_key=key)
    return event.id, stamp[0]


def publish(site: Site, count: int, *, threads: int, rate: float | None = None, keys: int = 0) -> dict[str, float]:
    """`count` events from `threads` publishers, as fast as possible or paced at `rate` per second;
    with `keys`, event n has ordering key `k{n % keys}` (the keys interleaved)."""
    commits: dict[str, float] = {}
    lock = threading.Lock()
    issued = iter(range(count))
    started = time.monotonic()

    def publisher() -> None:
        try:
            while True:
                with lock:
                    n = next(issued, None)
                if n is None:
                    return
                if rate:
                    delay = started + n / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                event_id, at = publish_one(site, f"k{n % keys}" if keys else None)
                commits[event_id] = at
        finally:
            connection.close()

    pool = [threading.Thread(target=publisher) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return commits


def wait_succeeded(expected: int, *, stall: float, limit: float) -> tuple[float, int]:
    """Poll until `expected` deliveries are recorded as succeeded; (unix time, count) when done, when
    nothing moved for `stall` seconds, or after `limit` seconds (a slow engine is cut short)."""
    last, last_change, deadline = -1, time.monotonic(), time.monotonic() + limit
    while True:
        done = Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count()
        now = time.time()
        if done >= expected or time.monotonic() > deadline:
            return now, done
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > stall:
            return now, done
        time.sleep(0.02)


def latencies(receiver: Receiver, commits: dict[str, float], webhooks: set[str]) -> tuple[list[float], int]:
    """Commit → first receipt in ms for deliveries to `webhooks`, and how many arrived twice or more."""
    owner = {d: (e, w) for d, e, w in Delivery.objects.values_list("id", "event_id", "webhook_id")}
    first: dict[str, float] = {}
    duplicates = 0
    for at, delivery_id, _path in receiver.arrivals():
        if delivery_id in first:
            duplicates += 1
        else:
            first[delivery_id] = at
    values = [
        (at - commits[owner[d][0]]) * 1000
        for d, at in first.items()
        if d in owner and owner[d][1] in webhooks and owner[d][0] in commits
    ]
    return values, duplicates


def unfinished_by_state(webhooks: set[str]) -> dict[str, int]:
    """Where the healthy deliveries that did not finish in time stand (a cut run says why)."""
    now = timezone.now()
    counts: dict[str, int] = {}
    pending = Delivery.objects.filter(webhook_id__in=webhooks).exclude(status=Delivery.Status.SUCCEEDED)
    for d in pending.only("status", "attempt_count", "leased_until", "next_attempt_at"):
        lease = "leased" if d.leased_until and d.leased_until > now else "unleased"
        due = "due" if d.next_attempt_at and d.next_attempt_at <= now else "later"
        key = f"{d.status}, {d.attempt_count} attempts, {lease}, {due}"
        counts[key] = counts.get(key, 0) + 1
    return counts


# --- runs -------------------------------------------------------------------------------------
def out_of_order(receiver: Receiver) -> int:
    """Deliveries of an ordered key that first arrived before one published ahead of them on it."""
    order = {
        d: (k, s) for d, k, s in Delivery.objects.filter(ordering_key__isnull=False).values_list("id", "ordering_key", "sequence")
    }
    last: dict[tuple[str, str], int] = {}
    seen, late = set(), 0
    for _at, delivery_id, path in receiver.arrivals():
        if delivery_id in seen or delivery_id not in order:
            continue
        seen.add(delivery_id)
        key, sequence = order[delivery_id]
        if sequence < last.get((path, key), -1):
            late += 1
        last[(path, key)] = max(sequence, last.get((path, key), -1))
    return late


def burst(ctx: Context, *, events: int, webhooks: int, hanging: int = 0, ordering: str = "none", keys: int = 0) -> dict:
    """Publish `events` as fast as the publishers go; time to the last healthy attempt recorded.
    `ordering` is the webhooks' (docs/ordering.md) and `keys` how many ordering keys the events
    are spread over."""
    tables_reset()
    site, hooks = site_with_webhooks(ctx.receiver, webhooks, hanging=hanging, ordering=ordering)
    healthy = {h.id for h in hooks[: webhooks - hanging]}
    ctx.receiver.reset()
    workers = ctx.start_workers()
    workers.sample_memory()
    try:
        first_publish, cpu_before, worker_cpu_before = time.time(), time.process_time(), workers.cpu_seconds()
        postgres_cpu_before = postgres_cpu_seconds()
        commits = publish(site, events, threads=ctx.publishers, keys=keys)
        published, publisher_cpu = time.time(), time.process_time() - cpu_before
        expected = events * len(healthy)
        done_at, done = wait_succeeded(expected, stall=ctx.settle_timeout, limit=ctx.run_limit)
        worker_cpu = workers.cpu_seconds() - worker_cpu_before
        postgres_cpu = postgres_cpu_seconds() - postgres_cpu_before
        unfinished = unfinished_by_state(healthy) if done < expected else {}
        last_recorded = Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).aggregate(at=Max("last_attempt_at"))["at"]
    finally:
        workers.stop()
    values, duplicates = latencies(ctx.receiver, commits, healthy)
    seconds = done_at - first_publish
    return {
        "out_of_order": out_of_order(ctx.receiver) if ordering != "none" else 0,
        "unfinished": unfinished,
        "deliveries": done,
        "expected": expected,
        "seconds": seconds,
        "per_second": done / seconds,
        # A cut run's `seconds` include the wait for nothing to move; this rate stops at the last
        # attempt recorded (the same figure when every delivery finished).
        "per_second_recorded": done / max(last_recorded.timestamp() - first_publish, 0.001) if last_recorded else 0.0,
        "publish_seconds": published - first_publish,
        "publisher_cpu_ms_per_event": publisher_cpu / events * 1000,
        "worker_cpu_ms_per_delivery": worker_cpu / max(done, 1) * 1000,
        # Publishing and delivering together (the publisher's statements included).
        "postgres_cpu_ms_per_delivery": postgres_cpu / max(done, 1) * 1000,
        "p50_ms": percentile(values, 50),
        "p99_ms": percentile(values, 99),
        "duplicates": duplicates,
        "rss_mb": {pid: rss / 2**20 for pid, rss in workers.peak_rss.items()},
        "load_1m": os.getloadavg()[0],
        "worker_pid": workers.proc.pid,
    }


def steady(ctx: Context, *, rate: float, webhooks: int, seconds: float) -> dict:
    """A steady `rate` events/s for `seconds`: commit → receipt percentiles."""
    tables_reset()
    site, hooks = site_with_webhooks(ctx.receiver, webhooks)
    ctx.receiver.reset()
    workers = ctx.start_workers()
    try:
        events = int(rate * seconds)
        started, worker_cpu_before = time.monotonic(), workers.cpu_seconds()
        commits = publish(site, events, threads=ctx.publishers, rate=rate)
        publish_seconds = time.monotonic() - started
        _, done = wait_succeeded(events * webhooks, stall=ctx.settle_timeout, limit=ctx.run_limit)
        worker_cpu = workers.cpu_seconds() - worker_cpu_before
    finally:
        workers.stop()
    values, duplicates = latencies(ctx.receiver, commits, {h.id for h in hooks})
    return {
        "deliveries": done,
        "expected": events * webhooks,
        "achieved_rate": events / publish_seconds,
        "worker_cpu_ms_per_delivery": worker_cpu / max(done, 1) * 1000,
        "load_1m": os.getloadavg()[0],
        "p50_ms": percentile(values, 50),
        "p95_ms": percentile(values, 95),
        "p99_ms": percentile(values, 99),
        "duplicates": duplicates,
    }


def limit(receiver: Receiver, *, count: int, concurrency: int = 64) -> dict:
    out = subprocess.run(
        [
            PY,
            str(ROOT / "bench" / "limit.py"),
            "--url",
            receiver.url("limit"),
            "--count",
            str(count),
            "--concurrency",
            str(concurrency),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    receiver.reset()
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- backlog ----------------------------------------------------------------------------------
BACKLOG_INSERT = """
INSERT INTO deliveries_delivery (id, event_id, webhook_id, status, attempt_count, schedule_position,
    next_attempt_at, leased_until, lease_token, last_error, created_at, updated_at, sequence)
SELECT %s || lpad(g::text, 8, '0'), %s, %s, 'pending', 1, 1, {due}, NULL, NULL, '', now(), now(), 0
FROM generate_series(%s, %s) AS g
"""


def _timed_sweeps(repeat: int, before=None) -> list[float]:
    times = []
    for _ in range(repeat):
        if before:
            before()
        started = time.perf_counter()
        deliveries_sweep()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _claim_plan(release_due) -> list[str]:
    """EXPLAIN ANALYZE of the sweep's first statement (its claim), rolled back afterwards."""
    captured: list[tuple[str, tuple]] = []

    def capture(execute, sql, params, many, context):
        captured.append((sql, params))
        return execute(sql, params, many, context)

    release_due()
    with transaction.atomic():
        with connection.execute_wrapper(capture):
            deliveries_sweep(max_batches=1)
        transaction.set_rollback(True)
    found = [(s, p) for s, p in captured if "deliveries_delivery" in s]
    if not found:  # the engine runs its claim on a raw psycopg cursor, out of Django's sight
        from deliveries import bulk

        now = timezone.now()
        found = [(bulk.CLAIM_SQL, [now, "explain", now, now, settings.AGENTBOT_SEND_BATCH])]
    sql, params = found[0]
    release_due()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
            plan = [row[0] for row in cursor.fetchall()]
        transaction.set_rollback(True)
    return plan


def backlog(ctx: Context, *, sizes: list[int], due: int = 100, repeat: int = 15) -> dict:
    """The sweep's cost with `size` deliveries waiting for a later retry, with and without `due` due."""
    tables_reset()
    site, (hook,) = site_with_webhooks(ctx.receiver, 1)
    event = Event.objects.create(site=site, type="message.created", data=MESSAGE)
    with connection.cursor() as cursor:
        cursor.execute(BACKLOG_INSERT.format(due="now() - interval '1 second'"), ["dlv_due_", event.id, hook.id, 1, due])

    def release_due() -> None:
        Delivery.objects.filter(id__startswith="dlv_due_").update(status="pending", leased_until=None, lease_token=None)

    results, inserted = {}, 0
    for size in sizes:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                BACKLOG_INSERT.format(due="now() + interval '1 hour' + g * interval '1 millisecond'"),
                ["dlv_wait_", event.id, hook.id, inserted + 1, size],
            )
            cursor.execute("VACUUM ANALYZE deliveries_delivery")
        insert_seconds = time.perf_counter() - started
        inserted = size
        broker_flush()
        idle = _timed_sweeps(repeat)  # the due ones are leased after the first call
        busy = _timed_sweeps(repeat, before=release_due)
        results[size] = {
            "insert_seconds": insert_seconds,
            "idle_ms": statistics.median(idle[1:]),
            "due_ms": statistics.median(busy),
            "plan": _claim_plan(release_due),
        }
    broker_flush()
    tables_reset()
    return results
