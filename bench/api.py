"""The REST API under load, black box: the service as `make run` starts it (`manage.py serve`: web,
worker and beat) on the benchmark's PostgreSQL database and Redis db, 10 webhooks created through
the API to the benchmark receiver, then `POST /api/v1/events` from N concurrent HTTP clients.

One run per client count reports: publish rate (201s per second of publishing), deliveries per
second from the first publish to the last delivery recorded as succeeded, 5xx and other failed
publishes, the peak number of PostgreSQL connections to the benchmark database (pg_stat_activity,
sampled every 50 ms, the sampler's own excluded) and whether every 201 was stored and delivered.

Run it through bench/run.py (`make bench BENCH_ARGS="--only api --runs 3"`), or alone for one run:
    .venv/bin/python bench/api.py --events 1000 --clients 16,64
    .venv/bin/python bench/api.py --clients 16 --batch 0,100 --batch-events 5000   # single, then batches of 100
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import BROKER_URL, DATABASE_URL, PY, ROOT, Receiver, _cpu_seconds, broker_flush, stop  # noqa: E402
from bench.limit import MESSAGE  # noqa: E402

WEBHOOKS = 10


def _connect(autocommit: bool = True):
    import psycopg

    return psycopg.connect(DATABASE_URL, autocommit=autocommit)


def database_name() -> str:
    return DATABASE_URL.rsplit("/", 1)[-1].split("?", 1)[0]


class Service:
    """`manage.py serve` in its own process group, with its own data directory (credentials)."""

    def __init__(self, log_dir: Path, port: int, extra_env: dict[str, str] | None = None) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / "serve.log"
        self.base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "DATABASE_URL": DATABASE_URL,
            "CELERY_BROKER_URL": BROKER_URL,
            "PORT": str(port),
            "AGENTBOT_DATA_DIR": str(log_dir / "data"),
            "AGENTBOT_ALLOW_PRIVATE_URLS": "1",
            "AGENTBOT_API_RATE": "0",  # one key, as fast as the service takes it
            **(extra_env or {}),
        }
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [PY, "manage.py", "serve"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.key = ""

    def wait_ready(self, timeout: float = 90.0) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"manage.py serve exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            text = self.log.read_text(errors="replace")
            key = re.search(r"key (abk_\S+)", text)
            if key and " ready." in text:
                try:
                    if requests.get(self.base + "/readyz", timeout=2).status_code == 200:
                        self.key = key.group(1)
                        return
                except requests.ConnectionError:
                    pass
            time.sleep(0.3)
        raise RuntimeError(f"manage.py serve did not come up:\n{self.log.read_text(errors='replace')[-3000:]}")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by the service's web processes (uvicorn) and the rest (worker, beat)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        web, family, todo = set(), set(), [self.proc.pid]
        while todo:
            pid = todo.pop()
            for child, parent in parents.items():
                if parent == pid and child not in family:
                    family.add(child)
                    todo.append(child)
                    try:
                        command = Path(f"/proc/{child}/cmdline").read_bytes()
                    except OSError:
                        continue
                    if b"uvicorn" in command or pid in web:
                        web.add(child)
        return {
            "web": sum(_cpu_seconds(pid) for pid in web),
            "worker": sum(_cpu_seconds(pid) for pid in family - web),
        }

    def stop(self) -> None:
        stop(self.proc, grace=20)


class ConnectionSampler:
    """Peak of pg_stat_activity rows for the benchmark database, this sampler's own excluded."""

    def __init__(self, interval: float = 0.05) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(interval,), daemon=True)
        self._thread.start()

    def _loop(self, interval: float) -> None:
        with _connect() as conn:
            while not self._stop.is_set():
                (count,) = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    [database_name()],
                ).fetchone()
                self.peak = max(self.peak, count)
                self._stop.wait(interval)

    def close(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def tables_reset() -> None:
    """Empty events, deliveries and webhooks; the service's own site, admin and API key stay."""
    with _connect() as conn:
        conn.execute("TRUNCATE deliveries_attempt, deliveries_delivery, deliveries_event, subscriptions_webhook CASCADE")


async def _publish(base: str, key: str, events: int, clients: int, batch: int = 0) -> dict:
    """`events` publishes from `clients` concurrent clients: one `POST /api/v1/events` each, or
    with `batch`, `POST /api/v1/events/batch` requests of that many events."""
    import aiohttp

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    single = {"event": "message.created", "data": MESSAGE}
    statuses: dict[int, int] = {}
    accepted: list[str] = []
    failures: list[str] = []
    size = max(batch, 1)
    issued = iter([min(size, events - start) for start in range(0, events, size)])
    timeout = aiohttp.ClientTimeout(total=60)

    def count(status: int, n: int = 1) -> None:
        statuses[status] = statuses.get(status, 0) + n

    async def client(session) -> None:
        for n in issued:
            url, body = base + "/api/v1/events", json.dumps(single)
            if batch:
                url, body = base + "/api/v1/events/batch", json.dumps({"events": [single] * n})
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    text = await response.text()
                    if batch and response.status == 200:
                        for result in json.loads(text)["results"]:  # each as its own publish would answer
                            count(result["status"])
                            if result["status"] == 201:
                                accepted.append(result["id"])
                            elif len(failures) < 5:
                                failures.append(json.dumps(result)[:200])
                        continue
                    count(response.status, n)
                    if response.status == 201:
                        accepted.append(json.loads(text)["id"])
                    elif len(failures) < 5:
                        failures.append(f"{response.status}: {text[:200]}")
            except (TimeoutError, aiohttp.ClientError) as exc:
                count(0, n)  # no response at all
                if len(failures) < 5:
                    failures.append(repr(exc))

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return {"statuses": statuses, "accepted": accepted, "failures": failures}


def _webhooks_create(service: Service, receiver: Receiver) -> None:
    import requests

    for n in range(WEBHOOKS):
        response = requests.post(
            service.base + "/api/v1/webhooks",
            json={"url": receiver.url(f"api{n}"), "events": ["*"]},
            headers={"Authorization": f"Bearer {service.key}"},
            timeout=10,
        )
        if response.status_code != 201:
            raise RuntimeError(f"creating a webhook: {response.status_code} {response.text[:300]}")


def _wait_delivered(expected: int, *, stall: float, limit: float) -> tuple[int, float | None]:
    """Poll until `expected` deliveries succeeded, nothing moved for `stall` s, or `limit` s passed;
    (count, unix time of the last succeeded attempt)."""
    last, last_change, deadline = -1, time.monotonic(), time.monotonic() + limit
    with _connect() as conn:
        while True:
            done, last_at = conn.execute(
                "SELECT count(*), extract(epoch FROM max(last_attempt_at)) FROM deliveries_delivery WHERE status = 'succeeded'"
            ).fetchone()
            if done >= expected or time.monotonic() > deadline:
                return done, float(last_at) if last_at is not None else None
            if done != last:
                last, last_change = done, time.monotonic()
            elif time.monotonic() - last_change > stall:
                return done, float(last_at) if last_at is not None else None
            # The end is the last attempt's own time, so polling more often would not make it more
            # exact; it would only take the database's CPU from the run it measures (a count of
            # the succeeded deliveries every 50 ms cost 5% of the run's CPU at 50,000 deliveries).
            time.sleep(0.25)


def _stored(accepted: list[str]) -> tuple[int, int]:
    """(events stored, events stored that no 201 named)."""
    with _connect() as conn:
        ids = {row[0] for row in conn.execute("SELECT id FROM deliveries_event")}
    return len(ids), len(ids - set(accepted))


def api_run(
    service: Service, receiver: Receiver, *, events: int, clients: int, limit: float, batch: int = 0, run_limit: float = 180.0
) -> dict:
    """One measured run against a started service: fresh tables, 10 webhooks, `events` publishes
    (in batches of `batch` events, if given)."""
    tables_reset()
    receiver.reset()
    _webhooks_create(service, receiver)
    sampler = ConnectionSampler()
    cpu_before = service.cpu_seconds()
    try:
        started = time.time()
        out = asyncio.run(_publish(service.base, service.key, events, clients, batch))
        published = time.time()
        accepted = out["accepted"]
        done, last_at = _wait_delivered(len(accepted) * WEBHOOKS, stall=30.0, limit=run_limit)
    finally:
        peak = sampler.close()
    cpu = {name: seconds - cpu_before.get(name, 0.0) for name, seconds in service.cpu_seconds().items()}
    stored, unnamed = _stored(accepted)
    seconds = (last_at or time.time()) - started
    statuses = out["statuses"]
    return {
        "clients": clients,
        "batch": batch,
        "events": events,
        "accepted": len(accepted),
        "publish_seconds": published - started,
        "publish_per_second": len(accepted) / (published - started),
        "deliveries": done,
        "expected": len(accepted) * WEBHOOKS,
        "per_second": done / max(seconds, 0.001),
        "of_limit": done / max(seconds, 0.001) / limit if limit else None,
        "status_5xx": sum(n for code, n in statuses.items() if code >= 500),
        "no_response": statuses.get(0, 0),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "failures": out["failures"],
        "events_stored": stored,
        "stored_without_201": unnamed,
        "peak_connections": peak,
        # What a publish costs the web processes, whatever else the machine is doing.
        "web_cpu_ms_per_publish": cpu["web"] / max(len(accepted), 1) * 1000,
        "worker_cpu_ms_per_delivery": cpu["worker"] / max(done, 1) * 1000,
        "load_1m": os.getloadavg()[0],
    }


def measure(
    receiver: Receiver,
    log_dir: Path,
    *,
    events: int,
    clients: list[int],
    limit: float,
    port: int,
    service_env: dict[str, str] | None = None,
    batches: list[int] = (0,),
    batch_events: int | None = None,
) -> list[dict]:
    """Start the service once, then one run per batch size (0: single publishes) and client count."""
    broker_flush()
    service = Service(log_dir, port, service_env)
    try:
        service.wait_ready()
        return [
            api_run(service, receiver, events=(batch_events or events) if b else events, clients=c, limit=limit, batch=b)
            for b in batches
            for c in clients
        ]
    finally:
        service.stop()


def main() -> None:
    import argparse

    from bench import harness

    parser = argparse.ArgumentParser(description="One run of the REST API benchmark.")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--clients", default="16,64")
    parser.add_argument(
        "--batch", default="0", help="events per request, comma-separated: 0 for POST /api/v1/events, N for /events/batch"
    )
    parser.add_argument("--batch-events", type=int, default=None, help="events of the batch runs (default --events)")
    parser.add_argument("--port", type=int, default=8765, help="the receiver's port")
    parser.add_argument("--web-port", type=int, default=8790, help="the service's port")
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the service (e.g. AGENTBOT_WEB_WORKERS=2); repeatable",
    )
    args = parser.parse_args()
    service_env = dict(item.split("=", 1) for item in args.service_env)
    harness.configure_environment(http_timeout=5.0)
    harness.database_create()
    receiver = Receiver(args.port)
    try:
        limit = scenarios_limit(receiver, WEBHOOKS * max(args.events, args.batch_events or 0))
        print(json.dumps({"limit_per_second": limit}), flush=True)
        log_dir = Path(tempfile.mkdtemp(prefix="agentbot-bench-api-"))
        for out in measure(
            receiver,
            log_dir,
            events=args.events,
            clients=[int(c) for c in args.clients.split(",")],
            limit=limit,
            port=args.web_port,
            service_env=service_env,
            batches=[int(b) for b in args.batch.split(",")],
            batch_events=args.batch_events,
        ):
            print(json.dumps(out), flush=True)
    finally:
        receiver.close()


def scenarios_limit(receiver: Receiver, count: int) -> float:
    """The plain-client limit (bench/limit.py) to the same receiver, requests per second."""
    out = subprocess.run(
        [PY, str(ROOT / "bench" / "limit.py"), "--url", receiver.url("limit"), "--count", str(count), "--concurrency", "64"],
        check=True,
        capture_output=True,
        text=True,
    )
    receiver.reset()
    return json.loads(out.stdout.strip().splitlines()[-1])["per_second"]


if __name__ == "__main__":
    main()
