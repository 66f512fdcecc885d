"""The benchmark's moving parts: its own database and Redis db, the receiver process, Celery workers
(with beat) and a sampler of their memory."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/agentbot_bench")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/9")


def configure_environment(*, http_timeout: float) -> None:
    """Point this process and every child at the benchmark's own database and Redis db."""
    os.environ.update(
        {
            "DATABASE_URL": DATABASE_URL,
            "CELERY_BROKER_URL": BROKER_URL,
            "DJANGO_SETTINGS_MODULE": "agentbot.settings",
            "AGENTBOT_ALLOW_PRIVATE_URLS": "1",
            # The benchmark publishes with one key as fast as the service takes it: no rate limit.
            "AGENTBOT_API_RATE": "0",
            "AGENTBOT_HTTP_TIMEOUT": f"{http_timeout:g}",
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def database_create() -> None:
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(DATABASE_URL)
    admin = psycopg.connect(
        host=cfg["HOST"] or "127.0.0.1",
        port=cfg["PORT"] or 5432,
        user=cfg["USER"] or "postgres",
        password=cfg["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )
    with admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone():
            admin.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


def broker_flush() -> None:
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()


def _cpu_seconds(pid: int | str) -> float:
    """CPU time (user + system) a process has used so far, in seconds (Linux /proc); 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU time used so far by the PostgreSQL server's processes on this machine (a backend that
    exits between two readings takes its share with it)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += _cpu_seconds(entry.name)
            except OSError:
                continue
    return total


class Receiver:
    """bench/receiver.py in its own process, so it does not share a GIL with what it measures."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [PY, str(ROOT / "bench" / "receiver.py"), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.count()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the benchmark receiver did not start") from None
                time.sleep(0.05)

    def url(self, name: str, *, hang: bool = False) -> str:
        return f"{self.base}/{'hang' if hang else 'hook'}/{name}"

    def _get(self, path: str, method: str = "GET") -> bytes:
        request = urllib.request.Request(self.base + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def count(self) -> int:
        return json.loads(self._get("/_count"))["count"]

    def reset(self) -> None:
        self._get("/_reset", "POST")

    def arrivals(self) -> list[tuple[float, str, str]]:
        """(unix time, delivery id, path) of every request since the last reset."""
        return [tuple(json.loads(line)) for line in self._get("/_dump").splitlines() if line]

    def close(self) -> None:
        stop(self.proc)


class Workers:
    """Celery worker nodes, the first with embedded beat, each the way `make run` starts one."""

    def __init__(
        self,
        log_dir: Path,
        *,
        concurrency: int,
        pool: str | None = None,
        extra_env: dict[str, str] | None = None,
        nodes: int = 1,
    ) -> None:
        from django.conf import settings

        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / "worker.log"
        pool = pool or settings.CELERY_WORKER_POOL  # the project's own choice unless told otherwise
        env = {**os.environ, **(extra_env or {})}
        self.procs: list[subprocess.Popen] = []
        for n in range(nodes):
            args = [PY, "-m", "celery", "-A", "agentbot", "worker", "-l", "WARNING", "-c", str(concurrency)]
            args += ["--beat"] if n == 0 else []
            args += ["--pool", pool]
            args += ["-n", f"bench{n}-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
            log = self.log if n == 0 else log_dir / f"worker-{n}.log"
            with open(log, "wb") as out:
                self.procs.append(
                    subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
                )
        self.proc = self.procs[0]
        self.expected_children = nodes * concurrency if pool == "prefork" else 0
        self.peak_rss: dict[int, int] = {}
        self._sampling = threading.Event()
        self._sampler: threading.Thread | None = None

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Ready once every pool process exists and the worker's queue consumer is up."""
        from agentbot.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"a worker exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            try:
                replies = app.control.ping(timeout=0.5)
            except Exception:
                replies = []
            if len(replies) >= len(self.procs) and len(self.processes()) >= len(self.procs) + self.expected_children:
                return
            time.sleep(0.2)
        raise RuntimeError("the worker did not become ready in time")

    def processes(self) -> list[int]:
        """The workers' pids and their pool processes' pids (Linux /proc)."""
        found, todo = [], [p.pid for p in self.procs]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
        return found

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the worker and its pool processes."""
        return sum(_cpu_seconds(pid) for pid in self.processes())

    def sample_memory(self, interval: float = 0.1) -> None:
        """Track each process's peak RSS (the kernel's high-water mark, VmHWM) until stop()."""

        def loop() -> None:
            while not self._sampling.wait(interval):
                for pid in self.processes():
                    try:
                        status = Path(f"/proc/{pid}/status").read_text()
                    except OSError:
                        continue
                    kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
                    self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), kb * 1024)

        self._sampler = threading.Thread(target=loop, daemon=True)
        self._sampler.start()

    def profile(self, out: Path, mode: str = "idle") -> None:
        """Sample every worker process with py-spy (pip install py-spy) until stop(): collapsed stacks.
        `mode`: "idle" samples every thread all the time (shares of wall time), "cpu" only threads on a
        CPU, "gil" only the thread holding the GIL (what bounds one process)."""
        spy = Path(PY).with_name("py-spy")
        if not spy.exists():
            raise SystemExit(f"--profile needs py-spy beside {PY}: {Path(PY).with_name('pip')} install py-spy")
        flags = {"idle": ["--idle"], "cpu": [], "gil": ["--gil"]}[mode]
        self._profiler = subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(self.proc.pid),
                "--subprocesses",
                *flags,
                "--rate",
                "200",  # node 0
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if getattr(self, "_profiler", None):
            self._profiler.send_signal(signal.SIGINT)
            self._profiler.wait(timeout=60)
        self._sampling.set()
        if self._sampler:
            self._sampler.join()
        for proc in self.procs:
            stop(proc, grace=20)


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Stop a process group we started: TERM, then KILL after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # whatever of the group outlived its leader
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
