"""`make run`'s supervisor: the back-off rules on a fake clock, and real child processes that die,
ignore SIGTERM or never start."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentbot.supervisor import Backoff, ChildSpec, ChildState, describe_exit

ROOT = Path(__file__).resolve().parents[2]


# --- the rules, on a fake clock ---------------------------------------------------------------
def test_the_delay_doubles_from_one_second_to_a_thirty_second_cap():
    assert [Backoff().delay(failures=n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_child_that_stayed_up_a_minute_is_restarted_after_one_second_again():
    child, backoff = ChildState(spec=ChildSpec("worker", ["true"])), Backoff()
    delays = []
    for started, died in [(100, 110), (111, 120), (122, 130), (134, 200), (201, 205)]:
        child.started_at = started
        delays.append(child.died(now=died, backoff=backoff))
    # up 10, 9 and 8 s: 1, 2, 4; then up 66 s, so that death is the first in a row again; then 2.
    assert delays == [1, 2, 4, 1, 2]
    assert child.restart_at == 207


def test_a_child_that_keeps_dying_right_after_its_start_is_given_up_on():
    child, backoff = ChildState(spec=ChildSpec("web", ["true"])), Backoff(started_after=3, give_up_after=3)
    for now in (10.0, 20.0):
        child.started_at = now
        child.died(now=now + 1, backoff=backoff)
    assert not child.given_up(backoff)
    child.started_at = 30.0
    child.died(now=40.0, backoff=backoff)  # up 10 s: it had started; the early deaths are forgotten
    assert not child.given_up(backoff) and child.early_failures == 0
    for now in (50.0, 60.0, 70.0):
        child.started_at = now
        child.died(now=now + 0.5, backoff=backoff)
    assert child.given_up(backoff)


def test_an_exit_is_described_by_its_code_or_signal():
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(0) == "exited with code 0"


# --- real processes -----------------------------------------------------------------------------
SUPERVISE = textwrap.dedent(
    """
    import json, logging, sys
    from agentbot.supervisor import Backoff, ChildSpec, Supervisor

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s", force=True)
    config = json.loads(sys.argv[1])
    specs = [ChildSpec(name, [sys.executable, "-c", code]) for name, code in config["children"].items()]
    Supervisor(specs, backoff=Backoff(**config["backoff"]), stop_timeout=config["stop_timeout"], poll_interval=0.05).run()
    """
)


def child_code(pid_file: Path, body: str) -> str:
    """A child that appends its pid to `pid_file`, then does `body`."""
    return f"import os, signal, sys, time\nopen({str(pid_file)!r}, 'a').write(f'{{os.getpid()}}\\n')\n{body}"


@pytest.fixture(autouse=True)
def _no_child_left(tmp_path):
    """Whatever a failing test left running (every child writes its pid to a *.pids file)."""
    yield
    for path in tmp_path.glob("*.pids"):
        for pid in pids(path):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def supervise(tmp_path: Path, children: dict[str, str], backoff: dict, stop_timeout: float = 5.0):
    log = tmp_path / "supervisor.log"
    config = json.dumps({"children": children, "backoff": backoff, "stop_timeout": stop_timeout})
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", SUPERVISE, config], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def wait_until(condition, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)
    return found


def pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def ignores_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    ignored = int(status.split("SigIgn:", 1)[1].split()[0], 16)
    return bool(ignored & (1 << (signal.SIGTERM - 1)))


def test_a_dying_child_is_restarted_each_time_and_logged_while_the_other_runs_on(tmp_path):
    flaky, steady = tmp_path / "flaky.pids", tmp_path / "steady.pids"
    children = {
        "flaky": child_code(flaky, "time.sleep(0.1); sys.exit(3)"),
        "steady": child_code(steady, "time.sleep(600)"),
    }
    proc, log = supervise(tmp_path, children, {"first": 0.05, "cap": 0.2, "started_after": 0})
    try:
        wait_until(lambda: len(pids(flaky)) >= 4, "four runs of the flaky child")
        wait_until(lambda: "restart 3)" in log.read_text(), "the third restart's log line")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    text = log.read_text()
    assert f"flaky (pid {pids(flaky)[0]}) exited with code 3 after" in text
    assert "restarting it in 0.05 s (restart 1)" in text and "restarting it in 0.1 s (restart 2)" in text
    assert "restarting it in 0.2 s (restart 3)" in text
    assert len(pids(steady)) == 1 and "steady (pid" not in text, "the steady child was never touched"
    assert not alive(pids(steady)[0]), "stopping the supervisor stops its children"


def test_stopping_kills_a_child_that_ignores_sigterm_after_the_timeout(tmp_path):
    stubborn = tmp_path / "stubborn.pids"
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)"
    proc, log = supervise(tmp_path, {"stubborn": child_code(stubborn, ignore)}, {}, stop_timeout=0.5)
    try:
        (pid,) = wait_until(lambda: pids(stubborn), "the child to start")
        # Let the child install its handlers (its pid is written first), then ask the supervisor to stop.
        wait_until(lambda: ignores_sigterm(pid), "the child to ignore SIGTERM")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not alive(pid)
    assert "restart" not in log.read_text(), "a child stopped on purpose is not restarted"


def test_a_child_that_never_starts_is_given_up_on_and_the_others_are_stopped(tmp_path):
    broken, steady = tmp_path / "broken.pids", tmp_path / "steady.pids"
    children = {"broken": child_code(broken, "sys.exit(2)"), "steady": child_code(steady, "time.sleep(600)")}
    proc, log = supervise(tmp_path, children, {"first": 0.01, "started_after": 5, "give_up_after": 3})
    try:
        returncode = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert returncode == 1
    assert len(pids(broken)) == 3
    assert "broken died 3 times in a row within 5 s of starting; stopped the others" in log.read_text()
    assert not alive(pids(steady)[0])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_stop_every_child(tmp_path, sig):
    a, b = tmp_path / "a.pids", tmp_path / "b.pids"
    proc, _ = supervise(tmp_path, {"a": child_code(a, "time.sleep(600)"), "b": child_code(b, "time.sleep(600)")}, {})
    try:
        wait_until(lambda: pids(a) and pids(b), "both children")
        os.kill(proc.pid, sig)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not alive(pids(a)[0]) and not alive(pids(b)[0])


def test_what_a_killed_child_had_forked_is_killed_before_the_child_is_started_again(tmp_path):
    """As the Celery worker's embedded beat, which would otherwise run beside the new worker's."""
    parent, forked = tmp_path / "parent.pids", tmp_path / "forked.pids"
    fork = (
        f"import subprocess; subprocess.Popen([sys.executable, '-c', {child_code(forked, 'time.sleep(600)')!r}]); time.sleep(600)"
    )
    proc, log = supervise(tmp_path, {"parent": child_code(parent, fork)}, {"first": 0.05})
    try:
        (first_forked,) = wait_until(lambda: pids(forked), "the grandchild")
        os.kill(pids(parent)[0], signal.SIGKILL)
        wait_until(lambda: len(pids(forked)) == 2, "the restarted child's own grandchild")
        assert not alive(first_forked), "the first grandchild outlived its parent's restart"
        assert alive(pids(forked)[1])
        assert f"parent (pid {pids(parent)[0]}) was killed by SIGKILL" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not any(alive(pid) for pid in pids(parent) + pids(forked))


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_children_stop_when_the_supervisor_itself_is_killed(tmp_path):
    a = tmp_path / "a.pids"
    proc, _ = supervise(tmp_path, {"a": child_code(a, "time.sleep(600)")}, {})
    try:
        (pid,) = wait_until(lambda: pids(a), "the child")
        proc.kill()
        proc.wait(timeout=30)
        wait_until(lambda: not alive(pid), "the orphaned child to get SIGTERM")
    finally:
        if pids(a) and alive(pids(a)[0]):
            os.kill(pids(a)[0], signal.SIGKILL)
