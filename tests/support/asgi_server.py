"""A real uvicorn process serving agentbot/asgi.py (Django and the webchat Socket.IO endpoint)
against the test database and the test Redis."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from django.conf import settings

from tests.support.worker import ROOT, test_database_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AsgiServer:
    def __init__(self, log_dir: Path, *, workers: int = 1, **env_overrides: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "AGENTBOT_ALLOW_PRIVATE_URLS": "1",
            "PYTHONUNBUFFERED": "1",
            **{k: str(v) for k, v in env_overrides.items()},
        }
        self.log_path = log_dir / f"uvicorn-{self.port}.log"
        args = [sys.executable, "-m", "uvicorn", "agentbot.asgi:application", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--no-access-log", "--ws-max-size", "1048576"]
        # A polling client's long poll stays open until the next ping (25 s): stop within 2 s of SIGTERM.
        args += ["--timeout-graceful-shutdown", "2"]
        if workers > 1:  # processes sharing the port, as `manage.py serve` starts AGENTBOT_WEB_WORKERS of them
            args += ["--workers", str(workers)]
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"uvicorn exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"uvicorn did not come up:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
