"""Real Celery worker processes (with beat) against the test database and the test Redis."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Workers:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self, *, beat: bool = True, concurrency: int = 2, wait: bool = True, **env_overrides: str) -> subprocess.Popen:
        env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "AGENTBOT_ALLOW_PRIVATE_URLS": "1",
            "AGENTBOT_SWEEP_INTERVAL": "0.5",
            "AGENTBOT_DISPATCH_LEASE": "3",
            "AGENTBOT_HTTP_TIMEOUT": "5",
            "PYTHONUNBUFFERED": "1",
        }
        env.update({k: str(v) for k, v in env_overrides.items()})
        n = len(self.procs)
        log = self.log_dir / f"worker-{n}.log"
        args = [sys.executable, "-m", "celery", "-A", "agentbot", "worker", "-l", "INFO", "-c", str(concurrency)]
        args += ["-n", f"test{n}-{os.getpid()}@%h", "--without-gossip", "--without-mingle"]
        if beat:
            args += ["--beat", "-s", str(self.log_dir / f"beat-{n}")]
        with open(log, "wb") as out:
            proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        if wait:
            self.wait_ready(proc)
        return proc

    @staticmethod
    def wait_ready(proc: subprocess.Popen, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = proc.log_path.read_text(errors="replace")  # type: ignore[attr-defined]
            if " ready." in text:
                return
            if proc.poll() is not None:
                raise AssertionError(f"worker exited with {proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.1)
        raise AssertionError("worker did not become ready in time")

    @staticmethod
    def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop_all(self, sig: int = signal.SIGTERM) -> None:
        """Stop every worker: a warm shutdown by default; SIGKILL when what they hold no longer matters."""
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc, sig)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill(proc)
                proc.wait()
        self.procs.clear()
