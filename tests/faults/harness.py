"""What a fault test does around its fault: start workers, publish, wait, and count what arrived."""

import json
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass

import psycopg

from tests.support.receiver import Receiver
from tests.support.worker import ROOT, Workers

# Shortened engine timings for every fault test; a test overrides what its fault needs.
ENGINE = {
    "AGENTBOT_SWEEP_INTERVAL": "0.5",
    "AGENTBOT_DISPATCH_LEASE": "2",
    "AGENTBOT_HTTP_TIMEOUT": "2",
    "AGENTBOT_SEND_BATCH": "10",
    "AGENTBOT_RETRY_SCHEDULE": "0,1,1,1,1",
    # Each test injects one transport fault; a circuit opening on the failures some of them cause
    # would hold retries for its probes instead (tests/deliveries/test_endpoint_health_e2e.py).
    "AGENTBOT_CIRCUIT_THRESHOLD": "1000000",
}


@dataclass
class Published:
    webhooks: dict[str, str]  # webhook id -> url
    deliveries: dict[str, str]  # delivery id -> webhook id

    def of(self, webhook_ids) -> set[str]:
        return {d for d, w in self.deliveries.items() if w in webhook_ids}


@dataclass
class Tally:
    """Every expected delivery: how often it reached a receiver, how many attempts the database
    recorded for it, and its status there."""

    expected: set[str]
    arrivals: Counter
    statuses: dict[str, str]
    recorded: Counter
    seconds: float = 0.0
    designed: int = 1  # arrivals per delivery the test itself asks for (a receiver failing first)

    @property
    def duplicates(self) -> dict[str, int]:
        """Arrivals beyond the designed ones, per delivery."""
        return {d: self.arrivals[d] - self.designed for d in self.expected if self.arrivals[d] > self.designed}

    @property
    def unrecorded(self) -> dict[str, int]:
        """Requests a receiver got that no recorded attempt accounts for: sends a fault cut off."""
        return {d: self.arrivals[d] - self.recorded[d] for d in self.expected if self.arrivals[d] > self.recorded[d]}

    @property
    def never_arrived(self) -> set[str]:
        return self.expected - set(self.arrivals)

    @property
    def not_succeeded(self) -> set[str]:
        return {d for d in self.expected if self.statuses.get(d) != "succeeded"}

    @property
    def lost(self) -> set[str]:
        return self.never_arrived | self.not_succeeded

    @property
    def duplicate_count(self) -> int:
        return sum(self.duplicates.values())

    def report(self, name: str) -> str:
        cut = sum(self.unrecorded.values())
        lines = [
            f"[fault] {name}: {len(self.expected)} expected, {len(self.expected) - len(self.never_arrived)} arrived, "
            f"{len(self.expected) - len(self.not_succeeded)} succeeded in the database, lost {len(self.lost)}, "
            f"duplicates {self.duplicate_count} ({cut} re-sent after the fault cut them off, "
            f"{self.duplicate_count - cut} retried after a recorded failed attempt), "
            f"attempts recorded {sum(self.recorded.values())}, settled in {self.seconds:.1f} s"
        ]
        lines += [
            f"[fault]   duplicate {d} arrived {self.arrivals[d]} times, {self.recorded[d]} attempts recorded"
            for d in sorted(self.duplicates)
        ]
        lost = sorted(self.lost)
        lines += [f"[fault]   lost {d}: status {self.statuses.get(d)}, arrivals {self.arrivals[d]}" for d in lost[:20]]
        if len(lost) > 20:
            lines.append(f"[fault]   … and {len(lost) - 20} more lost")
        return "\n".join(lines)


def arrivals(receivers: list[Receiver]) -> Counter:
    return Counter(r.headers.get("x-agentbot-delivery-id") for rec in receivers for r in list(rec.received))


@dataclass
class Stack:
    """One test's view of its own services: the environment its processes get, and its workers."""

    name: str
    env: dict[str, str]
    workers: Workers

    # --- processes ----------------------------------------------------------------------------
    def start_worker(self, *, beat: bool = True, concurrency: int = 2, **overrides: str):
        url_env = {k: self.env[k] for k in ("DATABASE_URL", "CELERY_BROKER_URL")}
        return self.workers.start(beat=beat, concurrency=concurrency, **{**ENGINE, **url_env, **overrides})

    def _python(self, args: list[str]) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**self.env, **ENGINE},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @staticmethod
    def _output(proc: subprocess.Popen, timeout: float = 60) -> str:
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(proc.args)} exited with {proc.returncode}:\n{out}\n{err}")
        return out

    def publish_start(self, *, events: int, urls: list[str], interval: float = 0.0) -> subprocess.Popen:
        """Start publishing in the background: the fault can land while events are still coming."""
        args = ["-m", "tests.faults.publish", "--events", str(events), "--interval", str(interval)]
        for url in urls:
            args += ["--url", url]
        return self._python(args)

    def publish_result(self, proc: subprocess.Popen) -> Published:
        found = json.loads(self._output(proc))
        return Published(found["webhooks"], found["deliveries"])

    def publish(self, *, events: int, urls: list[str]) -> Published:
        return self.publish_result(self.publish_start(events=events, urls=urls))

    def redeliver(self, webhook_ids, since: str) -> list[str]:
        """`manage.py redeliver` for each webhook, side by side."""
        runs = [self._python(["manage.py", "redeliver", "--webhook", w, "--since", since]) for w in webhook_ids]
        return [self._output(run) for run in runs]

    def broker_control(self, command: str, queue: str, timeout: float) -> list:
        """A Celery remote-control command (add_consumer, cancel_consumer) to this stack's workers,
        sent with kombu's mailbox, as Celery does; returns their replies. Not through a Celery app:
        its broker URL would come from this test process's CELERY_BROKER_URL, the shared Redis."""
        from kombu import Connection
        from kombu.pidbox import Mailbox

        with Connection(self.env["CELERY_BROKER_URL"], connect_timeout=2) as conn:
            mailbox = Mailbox("celery", type="fanout", accept=["json"], serializer="json")(conn)
            return mailbox._broadcast(command, {"queue": queue}, reply=True, timeout=timeout)

    def log_problems(self) -> list[str]:
        """The workers' ERROR, WARNING and CRITICAL lines, for the report."""
        return [
            line
            for p in self.workers.procs
            for line in p.log_path.read_text(errors="replace").splitlines()  # type: ignore[attr-defined]
            if any(f" {level} " in line for level in ("ERROR", "WARNING", "CRITICAL"))
        ]

    def worker_logs(self, tail: int = 4000) -> str:
        return "\n".join(
            f"--- {p.log_path.name}\n{p.log_path.read_text(errors='replace')[-tail:]}"  # type: ignore[attr-defined]
            for p in self.workers.procs
        )

    # --- the database -------------------------------------------------------------------------
    def _query(self, sql: str, params) -> list[tuple] | None:
        """None while the database cannot be reached (one test restarts it on purpose)."""
        try:
            with psycopg.connect(self.env["DATABASE_URL"], connect_timeout=2) as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.OperationalError:
            return None

    def statuses(self, ids: set[str]) -> dict[str, str] | None:
        rows = self._query("SELECT id, status FROM deliveries_delivery WHERE id = ANY(%s)", [list(ids)])
        return None if rows is None else dict(rows)

    def recorded(self, ids) -> Counter:
        """Attempts stored per delivery: one per HTTP exchange the engine saw through."""
        rows = self._query(
            "SELECT delivery_id, count(*) FROM deliveries_attempt WHERE delivery_id = ANY(%s) GROUP BY delivery_id",
            [list(ids)],
        )
        assert rows is not None, "the database is not reachable"
        return Counter(dict(rows))

    def attempts(self, ids: set[str]) -> int:
        return sum(self.recorded(ids).values())

    def at_risk(self, receivers: list[Receiver]) -> set[str]:
        """Deliveries with a request at a receiver that no recorded attempt accounts for (yet),
        taken right after a fault: if the fault cut that request off from the database, the
        delivery goes out again once its lease runs out."""
        arrived = arrivals(receivers)
        recorded = self.recorded(arrived)
        return {d for d, n in arrived.items() if recorded[d] < n}

    def wait_statuses(self, ids: set[str], status: str, *, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.statuses(ids) or {}
            if len(found) == len(ids) and all(s == status for s in found.values()):
                return found
            if time.monotonic() > deadline:
                counts = Counter(found.values())
                raise AssertionError(
                    f"not all {len(ids)} deliveries {status} after {timeout:g} s: {dict(counts)}\n{self.worker_logs()}"
                )
            time.sleep(0.2)

    def wait_arrived(self, ids: set[str], receivers: list[Receiver], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= set(arrivals(receivers)):
            if time.monotonic() > deadline:
                missing = len(ids - set(arrivals(receivers)))
                raise AssertionError(f"{missing} of {len(ids)} deliveries never arrived in {timeout:g} s\n{self.worker_logs()}")
            time.sleep(0.05)

    # --- the count ----------------------------------------------------------------------------
    def settle(
        self, expected: set[str], receivers: list[Receiver], *, timeout: float, started: float, designed: int = 1
    ) -> Tally:
        """Wait until every expected delivery arrived and is succeeded (or time is up), then count.

        A short grace after the last arrival lets a late duplicate land, so it is counted too.
        """
        deadline = time.monotonic() + timeout
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            statuses = self.statuses(expected) or statuses
            done = all(statuses.get(d) == "succeeded" for d in expected)
            if done and expected <= set(arrivals(receivers)):
                break
            time.sleep(0.2)
        seconds = time.monotonic() - started
        time.sleep(1.0)
        found = self.statuses(expected) or statuses
        tally = Tally(expected, arrivals(receivers), found, self.recorded(expected), seconds, designed)
        print("\n" + tally.report(self.name))
        problems = self.log_problems()
        if problems:
            print(f"[fault]   the workers logged {len(problems)} errors and warnings; the first of each kind:")
            kinds: dict[str, str] = {}
            for line in problems:  # the same message again, but for another task id, is not a new kind
                kinds.setdefault(re.sub(r"\[[0-9a-f-]{36}\]", "", line.split(" ", 2)[-1])[:120], line)
            for line in list(kinds.values())[:8]:
                print(f"[fault]     {line[:240]}")
        return tally

    def assert_nothing_lost(self, tally: Tally) -> None:
        assert not tally.lost, f"{len(tally.lost)} deliveries lost:\n{tally.report(self.name)}\n{self.worker_logs()}"

    def assert_duplicates_within(self, tally: Tally, at_risk: set[str] = frozenset()) -> None:
        """The bound on duplicates: every request a receiver got is a recorded attempt, except one
        per delivery the fault caught between its request and the record of it (`at_risk`).

        So a delivery repeats only after a failed attempt the engine recorded and retried on
        schedule (a timeout, say: the receiver may have seen that request), or once because the
        fault cut its outcome off. A send nobody recorded outside that set is a duplicate the
        engine caused on its own (two holders of one lease), and fails the test."""
        beyond = {d: n for d, n in tally.unrecorded.items() if d not in at_risk}
        assert not beyond, f"sent without a recorded attempt, yet not in flight at the fault: {beyond}\n{tally.report(self.name)}"
        repeated = {d: n for d, n in tally.unrecorded.items() if n > 1}
        assert not repeated, f"sent more than once without a recorded attempt: {repeated}\n{tally.report(self.name)}"
