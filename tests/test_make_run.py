"""`make run` starts web, worker and beat, prints a login and an API key, delivers, and outlives a
killed worker."""

import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests

from tests.support.receiver import Receiver
from tests.support.webchat_client import Visitor

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_service(tmp_path: Path, **env_overrides: str):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(PORT=str(port), AGENTBOT_DATA_DIR=str(tmp_path / "data"), AGENTBOT_SWEEP_INTERVAL="1", **env_overrides)
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, port, log


def wait_for_banner(proc, log: Path, port: int, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        key = re.search(r"key (abk_\S+)", text)
        if key and "user admin  password" in text and " ready." in text:
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    return key.group(1)
            except requests.ConnectionError:
                pass
        if proc.poll() is not None:
            raise AssertionError(f"make run exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.3)
    raise AssertionError(f"make run did not come up:\n{log.read_text(errors='replace')[-3000:]}")


def stop(proc) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def deliver_through(port: int, key: str) -> None:
    receiver = Receiver()
    try:
        api = f"http://127.0.0.1:{port}/api/v1"
        auth = {"Authorization": f"Bearer {key}"}
        created = requests.post(f"{api}/webhooks", json={"url": receiver.url, "events": ["*"]}, headers=auth, timeout=10)
        assert created.status_code == 201, created.text
        published = requests.post(
            f"{api}/events",
            json={"event": "ticket.created", "data": {"ticket_id": "tkt_1", "subject": "Hi", "status": "open"}},
            headers=auth,
            timeout=10,
        )
        assert published.status_code == 201, published.text
        (request,) = receiver.wait_for(1, timeout=30)
        assert request.headers["x-agentbot-event"] == "ticket.created"
        delivery_id = published.json()["deliveries"][0]["id"]
        deadline = time.monotonic() + 15
        while requests.get(f"{api}/deliveries/{delivery_id}", headers=auth, timeout=10).json()["status"] != "succeeded":
            assert time.monotonic() < deadline, "the delivery log never said succeeded"
            time.sleep(0.3)
    finally:
        receiver.close()


def chat_on_the_demo_page(port: int, log: Path) -> None:
    """The printed demo page embeds the demo webchat, which answers from the demo knowledge base."""
    demo = re.search(r"webchat:  (http://\S+/webchat/demo)  \(the widget of integration (intg_\w+)", log.read_text())
    assert demo, "make run printed no webchat demo page"
    page = requests.get(demo.group(1), timeout=10)
    assert page.status_code == 200 and f'data-integration="{demo.group(2)}"' in page.text
    visitor = Visitor()
    try:
        visitor.connect(f"http://127.0.0.1:{port}", demo.group(2), origin=f"http://127.0.0.1:{port}")
        assert visitor.send("What are your opening hours?")["ok"] is True
        reply = visitor.wait_for("message", lambda data: data["sender_type"] == "ai")
        assert reply["text"] == "We are open from 9:00 to 18:00, Monday to Friday."
    finally:
        visitor.close()


def test_make_run_on_embedded_defaults_delivers(tmp_path):
    proc, port, log = run_service(tmp_path)
    try:
        key = wait_for_banner(proc, log, port)
        assert "database: sqlite3, broker: filesystem" in log.read_text()
        assert requests.get(f"http://127.0.0.1:{port}/admin/login/", timeout=10).status_code == 200
        deliver_through(port, key)
        chat_on_the_demo_page(port, log)
    finally:
        stop(proc)


def test_make_run_uses_postgresql_and_redis_when_configured(tmp_path):
    name = f"agentbot_run_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    proc, port, log = run_service(
        tmp_path, DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{name}", CELERY_BROKER_URL="redis://127.0.0.1:6379/11"
    )
    try:
        key = wait_for_banner(proc, log, port)
        assert "database: postgresql, broker: redis" in log.read_text()
        deliver_through(port, key)
        chat_on_the_demo_page(port, log)
    finally:
        stop(proc)
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def processes() -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, command line)} of every process on the machine."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (FileNotFoundError, ProcessLookupError):
                continue
            found[int(entry.name)] = (int(stat.rsplit(") ", 1)[1].split()[1]), cmdline)
    return found


def celery_worker_of(service: subprocess.Popen) -> int | None:
    """The pid of the Celery worker that `manage.py serve` (under `make run`'s `service`) started."""
    table = processes()

    def under_service(pid: int) -> bool:
        while pid > 1 and pid in table:
            if pid == service.pid:
                return True
            pid = table[pid][0]
        return False

    workers = [
        pid
        for pid, (parent, cmdline) in table.items()
        if "celery" in cmdline and parent in table and "manage.py serve" in table[parent][1] and under_service(pid)
    ]
    assert len(workers) <= 1, workers
    return workers[0] if workers else None


class HealthPoller(threading.Thread):
    """GET /healthz again and again until stopped, keeping every failure."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.url, self.answers, self.failures = f"http://127.0.0.1:{port}/healthz", 0, []
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            try:
                response = requests.get(self.url, timeout=5)
                if response.status_code == 200:
                    self.answers += 1
                else:
                    self.failures.append(f"HTTP {response.status_code}")
            except requests.RequestException as exc:
                self.failures.append(repr(exc))
            self._halt.wait(0.1)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=10)


def test_make_run_restarts_a_killed_worker_and_web_answers_throughout(tmp_path):
    proc, port, log = run_service(tmp_path)
    receiver = Receiver()
    poller = HealthPoller(port)
    try:
        key = wait_for_banner(proc, log, port)
        api, auth = f"http://127.0.0.1:{port}/api/v1", {"Authorization": f"Bearer {key}"}
        created = requests.post(f"{api}/webhooks", json={"url": receiver.url, "events": ["*"]}, headers=auth, timeout=10)
        assert created.status_code == 201, created.text

        def publish(ticket_id: str) -> str:
            data = {"ticket_id": ticket_id, "subject": "Hi", "status": "open"}
            published = requests.post(f"{api}/events", json={"event": "ticket.created", "data": data}, headers=auth, timeout=10)
            assert published.status_code == 201, published.text
            return published.json()["deliveries"][0]["id"]

        first = publish("tkt_before")
        assert receiver.wait_for(1, timeout=30)[0].headers["x-agentbot-delivery-id"] == first
        worker = celery_worker_of(proc)
        assert worker is not None, "no Celery worker under make run"

        poller.start()
        os.kill(worker, signal.SIGKILL)
        # Published while the worker is down (or just back): the new worker must deliver it.
        second = publish("tkt_after")
        deadline = time.monotonic() + 60
        while second not in [r.headers["x-agentbot-delivery-id"] for r in receiver.received]:
            assert time.monotonic() < deadline, f"no new worker delivered within a minute:\n{log.read_text()[-3000:]}"
            assert proc.poll() is None, f"make run exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        answers_during_restart = poller.answers
        poller.stop()

        new_worker = celery_worker_of(proc)
        assert new_worker not in (None, worker)
        assert poller.failures == [], poller.failures
        assert answers_during_restart > 0, "web was polled while the worker restarted"
        text = log.read_text()
        assert f"worker (pid {worker}) was killed by SIGKILL after" in text
        assert "restarting it in 1 s (restart 1)" in text and f"worker restarted (pid {new_worker})" in text
        assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
    finally:
        poller.stop()
        receiver.close()
        stop(proc)
