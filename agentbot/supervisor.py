"""`make run`'s process supervisor, in the manner of supervisord: every child that dies is started
again after a back-off (1 s, doubling to 30 s; back to 1 s once it has stayed up a minute), each
restart logged with the child, how it ended, the delay and the count; SIGINT or SIGTERM stops them
all (SIGTERM, then SIGKILL after a timeout). So an OOM-killed worker costs its deliveries' leases,
not the web server beside it.

Each child leads its own process group, so what it forked itself dies with it: a SIGKILLed Celery
worker leaves its embedded beat process behind, and that orphan beside the restarted worker's own
beat would send every periodic task twice. On Linux a child is also sent SIGTERM if the supervisor
itself dies. (Being in their own groups, the children do not get the terminal's Ctrl-C themselves:
the supervisor gets it and stops them.)

A child that keeps dying within seconds of its start (a port already taken) is given up on after a
few tries, like supervisord's FATAL state: the supervisor then stops the others and exits, rather
than retrying for ever something that cannot work.

Nothing here knows Django or Celery: `ChildSpec`s come from the serve command."""

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn_child(argv: Sequence[str]) -> subprocess.Popen:
    """`argv` as the leader of a new process group (and, on Linux, stopped should we die)."""
    # No stdin: in a process group of its own, a child reading the terminal would be stopped (SIGTTIN).
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, process_group=0, preexec_fn=_die_with_parent if _libc is not None else None
    )


def kill_group(pgid: int) -> None:
    """SIGKILL whatever is left of a child's process group (nothing, usually)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: Sequence[str]


@dataclass(frozen=True)
class Backoff:
    first: float = 1.0  # seconds before the first restart
    cap: float = 30.0  # the longest wait between restarts
    healthy_after: float = 60.0  # up this long, a child's earlier failures are forgotten
    started_after: float = 3.0  # a child that dies sooner never really started...
    give_up_after: int = 5  # ...and this many such deaths in a row stop the service

    def delay(self, *, failures: int) -> float:
        """The wait before the restart that follows the `failures`-th death in a row (1, 2, …)."""
        return min(self.cap, self.first * 2 ** max(failures - 1, 0))


@dataclass
class ChildState:
    """One child's history: when the current process started, and its deaths in a row."""

    spec: ChildSpec
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0  # deaths in a row, forgotten once the child stays up `healthy_after`
    early_failures: int = 0  # deaths in a row within `started_after` of the start
    restarts: int = 0  # restarts since the supervisor started, for the log
    restart_at: float | None = None

    def died(self, *, now: float, backoff: Backoff) -> float:
        """Record a death at `now`; the delay before the restart."""
        uptime = now - self.started_at
        if uptime >= backoff.healthy_after:
            self.failures = 0
        self.failures += 1
        self.early_failures = self.early_failures + 1 if uptime < backoff.started_after else 0
        delay = backoff.delay(failures=self.failures)
        self.restart_at = now + delay
        return delay

    def given_up(self, backoff: Backoff) -> bool:
        return self.early_failures >= backoff.give_up_after


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


@dataclass
class Supervisor:
    specs: Sequence[ChildSpec]
    backoff: Backoff = field(default_factory=Backoff)
    stop_timeout: float = 10.0  # seconds between SIGTERM and SIGKILL when stopping
    poll_interval: float = 0.25
    clock: Callable[[], float] = time.monotonic
    spawn: Callable[[Sequence[str]], subprocess.Popen] = spawn_child

    def __post_init__(self):
        self.children = [ChildState(spec=spec) for spec in self.specs]
        self._stop_signal: int | None = None

    def run(self) -> None:
        """Start every child and keep them running until SIGINT or SIGTERM; raises SystemExit when
        a child is given up on."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        failed: ChildState | None = None
        try:
            for child in self.children:
                self._start(child)
            while self._stop_signal is None and failed is None:
                failed = self._tend()
                time.sleep(self.poll_interval)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failed is not None:
            raise SystemExit(
                f"{failed.spec.name} died {failed.early_failures} times in a row within "
                f"{self.backoff.started_after:g} s of starting; stopped the others"
            )

    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signum

    def _start(self, child: ChildState) -> None:
        child.process = self.spawn(list(child.spec.argv))
        child.started_at = self.clock()
        child.restart_at = None

    def _tend(self) -> ChildState | None:
        """Notice deaths and make due restarts; the child given up on, if any."""
        now = self.clock()
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                returncode, pid = child.process.returncode, child.process.pid
                child.process = None
                kill_group(pid)
                delay = child.died(now=now, backoff=self.backoff)
                if child.given_up(self.backoff):
                    logger.error(
                        "%s (pid %s) %s after %.1f s; not restarting it again",
                        child.spec.name,
                        pid,
                        describe_exit(returncode),
                        now - child.started_at,
                        extra={"child": child.spec.name, "pid": pid, "returncode": returncode},
                    )
                    return child
                child.restarts += 1
                logger.warning(
                    "%s (pid %s) %s after %.1f s; restarting it in %g s (restart %d)",
                    child.spec.name,
                    pid,
                    describe_exit(returncode),
                    now - child.started_at,
                    delay,
                    child.restarts,
                    extra={
                        "child": child.spec.name,
                        "pid": pid,
                        "returncode": returncode,
                        "restart_delay": delay,
                        "restarts": child.restarts,
                    },
                )
            elif child.process is None and child.restart_at is not None and now >= child.restart_at:
                self._start(child)
                logger.info(
                    "%s restarted (pid %s)",
                    child.spec.name,
                    child.process.pid,
                    extra={"child": child.spec.name, "pid": child.process.pid, "restarts": child.restarts},
                )
        return None

    def _stop_all(self) -> None:
        """SIGTERM to each child; SIGKILL to its process group once it has exited or the timeout has
        passed."""
        running = [c.process for c in self.children if c.process is not None and c.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for process in running:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            kill_group(process.pid)
