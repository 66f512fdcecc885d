"""The whole service as `make run` starts it (`manage.py serve`: web, worker and beat), in its own
process group, on the database and broker a test gives it."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.asgi_server import free_port
from tests.support.worker import ROOT


class Service:
    def __init__(self, log_dir: Path, *, database_url: str, broker_url: str, **env_overrides: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "PORT": str(self.port),
            "AGENTBOT_DATA_DIR": str(log_dir / f"data-{self.port}"),
            "AGENTBOT_ALLOW_PRIVATE_URLS": "1",
            "PYTHONUNBUFFERED": "1",
            **{k: str(v) for k, v in env_overrides.items()},
        }
        self.log_path = log_dir / f"serve-{self.port}.log"
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "serve"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.key = self._wait_ready()
        self.auth = {"Authorization": f"Bearer {self.key}"}

    def _wait_ready(self, timeout: float = 90.0) -> str:
        """The demo API key, once web and worker are up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            key = re.search(r"key (abk_\S+)", text)
            if key and " ready." in text:
                try:
                    if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                        return key.group(1)
                except requests.ConnectionError:
                    pass
            if self.proc.poll() is not None:
                raise AssertionError(f"manage.py serve exited with {self.proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"manage.py serve did not come up:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def webhook_create(self, url: str) -> str:
        response = requests.post(f"{self.url}/api/v1/webhooks", json={"url": url, "events": ["*"]}, headers=self.auth, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever of the group outlived the supervisor
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
