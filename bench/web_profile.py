"""CPU of one `POST /api/v1/events` in the web process, measured as CPU time (not wall time, which
a shared machine moves), so two variants can be compared A/B in the same run.

    .venv/bin/python bench/web_profile.py [--requests 2000] [--webhooks 10] [--batch 0]
        [--mode server|app|django|plain] [--cprofile FILE] [--uvicorn-arg=--http=h11 ...]

- `server` (default): uvicorn as `manage.py serve` starts it (`agentbot.asgi:application`), one
  keep-alive client sending the requests one after another; the CPU of the uvicorn process
  (from /proc) per request. Everything the web process does for a publish: HTTP parsing, the
  ASGI layers, Django, DRF, the publish's statements, the hand-off thread.
- `app`: the same ASGI application driven in this process, without the HTTP server; process CPU.
- `django`: Django's WSGI handler called in this thread, what `--cprofile` profiles (thread CPU).
- `plain`: what agentbot/serving.py's PlainPublish does on Django's thread for a single publish
  (the request signals, the publish, the response's headers), called in this thread; `--cprofile`
  profiles it too (thread CPU).

`--batch N` sends batches of N events to `POST /api/v1/events/batch` instead, and reports CPU
per event. Uses the benchmark's database (BENCH_DATABASE_URL) and broker; no worker runs (the
hand-offs are flushed afterwards). Prints one JSON line.
"""

import argparse
import asyncio
import cProfile
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness  # noqa: E402
from bench.limit import MESSAGE  # noqa: E402


def _body(batch: int) -> tuple[str, bytes]:
    if batch:
        events = [{"event": "message.created", "data": MESSAGE} for _ in range(batch)]
        return "/api/v1/events/batch", json.dumps({"events": events}).encode()
    return "/api/v1/events", json.dumps({"event": "message.created", "data": MESSAGE}).encode()


def _setup(webhooks: int) -> str:
    """Fresh tables, a site with `webhooks` webhooks and an API key; the key."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0, skip_checks=True)
    from bench import scenarios
    from core.services import api_key_create

    class NoReceiver:
        def url(self, name: str, *, hang: bool = False) -> str:
            return f"http://127.0.0.1:9/hook/{name}"

    scenarios.tables_reset()
    site, _ = scenarios.site_with_webhooks(NoReceiver(), webhooks)
    _, key = api_key_create(site=site)
    return key


def _thread_names(pid: int) -> dict[str, str]:
    """OS thread id -> Python thread name, from `py-spy dump` (Python does not name its OS threads)."""
    try:
        out = subprocess.run(["py-spy", "dump", "-p", str(pid)], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {m.group(1): m.group(2) for m in re.finditer(r"Thread (\d+) \([a-z]+\): \"([^\"]*)\"", out)}


def _threads_cpu(pid: int, names: dict[str, str]) -> dict[str, float]:
    """CPU seconds so far of each thread of `pid`, by thread name (threads of one kind summed)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = names.get(task.name) or stat[stat.index("(") + 1 : stat.rindex(")")]
        name = name.rstrip("0123456789_-")
        fields = stat.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


THREADS: dict[str, float] = {}


def _server(
    key: str,
    path: str,
    body: bytes,
    requests: int,
    warmup: int,
    uvicorn_args: list[str],
    py_spy: Path | None = None,
    clients: int = 1,
    root: Path = harness.ROOT,
) -> float:
    port = 8791
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    command = [harness.PY, "-m", "uvicorn", "agentbot.asgi:application", "--port", str(port), "--lifespan", "off"]
    proc = subprocess.Popen(command + ["--log-level", "warning", *uvicorn_args], cwd=root, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("uvicorn did not start") from None
                time.sleep(0.2)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(clients)]

        def client(conn, count: int) -> None:
            for _ in range(count):
                if path.startswith("GET "):
                    conn.request("GET", path[4:], headers=headers)
                else:
                    conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
                if response.status not in (200, 201):
                    raise RuntimeError(f"{response.status}: {answer[:300]!r}")

        def send(count: int) -> None:
            """`count` requests from `clients` keep-alive clients at once."""
            with ThreadPoolExecutor(clients) as pool:
                shares = [count // clients + (1 if n < count % clients else 0) for n in range(clients)]
                for future in [pool.submit(client, conn, share) for conn, share in zip(connections, shares, strict=True)]:
                    future.result()

        send(warmup)
        spy = None
        if py_spy:  # every thread, only while it runs (not idle), raw stacks for bench/profile_summary.py
            spy_command = ["py-spy", "record", "-p", str(proc.pid), "-r", "200", "-f", "raw", "-o", str(py_spy)]
            spy = subprocess.Popen(spy_command + ["--threads"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        names = _thread_names(proc.pid)
        before, threads_before = harness._cpu_seconds(proc.pid), _threads_cpu(proc.pid, names)
        send(requests)
        time.sleep(0.2)  # the hand-off thread's last message
        cpu = harness._cpu_seconds(proc.pid) - before
        for name, seconds in _threads_cpu(proc.pid, names).items():
            THREADS[name] = round((seconds - threads_before.get(name, 0.0)) / requests * 1000, 3)
        if spy:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)
        return cpu
    finally:
        harness.stop(proc, grace=10)


def _app(key: str, path: str, body: bytes, requests: int, warmup: int) -> float:
    from agentbot.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def one() -> None:
        sent = False
        status = []

        async def receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)

        async def send(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await application(dict(scope), receive, send)
        if status[0] not in (200, 201):
            raise RuntimeError(f"status {status[0]}")

    async def run(count: int) -> None:
        for _ in range(count):
            await one()

    loop = asyncio.new_event_loop()
    loop.run_until_complete(run(warmup))
    before = time.process_time()
    loop.run_until_complete(run(requests))
    return time.process_time() - before


def _django(key: str, path: str, body: bytes, requests: int, warmup: int, profile_to: Path | None) -> float:
    import io

    from django.core.wsgi import get_wsgi_application

    handler = get_wsgi_application()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }

    def run(count: int) -> None:
        for _ in range(count):
            status = []
            result = handler({**environ, "wsgi.input": io.BytesIO(body)}, lambda s, h, e=None, status=status: status.append(s))
            b"".join(result)
            if hasattr(result, "close"):
                result.close()
            if not status[0].startswith(("200", "201")):
                raise RuntimeError(status[0])

    return _thread_cpu(run, requests, warmup, profile_to)


def _plain(key: str, path: str, body: bytes, requests: int, warmup: int, profile_to: Path | None) -> float:
    from agentbot.serving import PlainPublish

    plain = PlainPublish(None, None)
    headers = {
        b"host": b"127.0.0.1:8000",
        b"authorization": f"Bearer {key}".encode(),
        b"content-type": b"application/json",
        b"content-length": str(len(body)).encode(),
    }
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": list(headers.items()),
    }

    def run(count: int) -> None:
        for _ in range(count):
            answer = plain._serve(scope, headers, body)
            if answer is None or answer[0] not in (200, 201):
                raise RuntimeError(f"not taken or refused: {answer and answer[:1]}")

    return _thread_cpu(run, requests, warmup, profile_to)


def _thread_cpu(run, requests: int, warmup: int, profile_to: Path | None) -> float:
    """This thread's CPU seconds for `run(requests)` after `run(warmup)`, under cProfile (thread
    time) when `profile_to` is given."""
    run(warmup)
    profiler = cProfile.Profile(time.thread_time) if profile_to else None
    before = time.thread_time()
    if profiler:
        profiler.enable()
    run(requests)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile_to)
    return time.thread_time() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--webhooks", type=int, default=10)
    parser.add_argument("--batch", type=int, default=0, help="events per request to /api/v1/events/batch (0: single publish)")
    parser.add_argument("--get", default="", help="server mode: GET this path instead (the fixed cost of a request)")
    parser.add_argument("--clients", type=int, default=16, help="server mode: concurrent keep-alive clients")
    parser.add_argument("--root", type=Path, default=None, help="server mode: serve this checkout instead (an A/B)")
    parser.add_argument("--mode", choices=["server", "app", "django", "plain"], default="server")
    parser.add_argument("--cprofile", type=Path, default=None, help="django and plain modes: write cProfile stats here")
    parser.add_argument("--py-spy", type=Path, default=None, help="server mode: py-spy raw samples of the web process here")
    parser.add_argument("--uvicorn-arg", action="append", default=[], help="server mode: one more uvicorn argument")
    args = parser.parse_args()
    harness.configure_environment(http_timeout=5.0)
    harness.database_create()
    import django

    django.setup()
    key = _setup(args.webhooks)
    path, body = _body(args.batch)
    if args.get:
        path = "GET " + args.get
    if args.mode == "server":
        from django.db import connections

        connections.close_all()
        cpu = _server(
            key, path, body, args.requests, args.warmup, args.uvicorn_arg, args.py_spy, args.clients, args.root or harness.ROOT
        )
    elif args.mode == "app":
        cpu = _app(key, path, body, args.requests, args.warmup)
    elif args.mode == "plain":
        cpu = _plain(key, path, body, args.requests, args.warmup, args.cprofile)
    else:
        cpu = _django(key, path, body, args.requests, args.warmup, args.cprofile)
    from deliveries.engine import outbox

    outbox.this_process().flush(timeout=10)
    harness.broker_flush()
    events = args.requests * max(args.batch, 1)
    out = {
        "mode": args.mode,
        "requests": args.requests,
        "batch": args.batch,
        "webhooks": args.webhooks,
        "clients": args.clients if args.mode == "server" else 1,
        "root": str(args.root or ""),
        "uvicorn_args": args.uvicorn_arg,
        "cpu_ms_per_request": round(cpu / args.requests * 1000, 3),
        "cpu_ms_per_event": round(cpu / events * 1000, 4),
        "load_1m": round(os.getloadavg()[0], 1),
        "cpu_ms_per_request_by_thread": THREADS,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
