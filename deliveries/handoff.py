"""Hand-offs from publishers to the workers, batched across transactions.

Each publish used to queue its own Celery message the moment its transaction committed: under a
burst that is a message (and a worker task, and a lease swap) per event. Here the commit only
appends the ids to this process's outbox, and one thread sends what has gathered: alone when
publishes are far apart (no added wait), many events to a message when they come in a burst or a
steady stream (a message gathers for up to AGENTBOT_HANDOFF_LINGER after the previous one).

Publishes in one process share a dispatch lease token for a second at a time, so one message can
carry the deliveries of many events. Nothing here is needed for safety: until a worker takes them,
the deliveries are in the database under their dispatch lease, and if this process dies with ids
unsent, or the broker refuses them, the sweep hands them out when the lease runs out.
"""

import atexit
import logging
import secrets
import threading
import time

from django.conf import settings

from core.process import PerProcess

logger = logging.getLogger(__name__)

TOKEN_LIFETIME = 1.0  # seconds one shared dispatch token is handed to new publishes


class Outbox:
    """The ids queued by this process's publishes and the thread that sends them (see outbox())."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._queued: dict[str, list[str]] = {}  # token -> ids, in arrival order
        self._sending = False
        self._thread: threading.Thread | None = None
        self._token, self._token_born = "", float("-inf")

    def token(self) -> str:
        """The dispatch lease token for a publish now (shared by this process's publishes for a second)."""
        with self._cond:
            now = self._clock()
            if now - self._token_born > TOKEN_LIFETIME:
                self._token, self._token_born = secrets.token_hex(16), now
            return self._token

    def put(self, ids: list[str], token: str) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deliveries-handoff", daemon=True)
                self._thread.start()
            self._queued.setdefault(token, []).extend(ids)
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until everything put has been sent (or refused); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queued or self._sending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        last_sent = float("-inf")
        while True:
            with self._cond:
                while not self._queued:
                    self._cond.wait()
                # Within AGENTBOT_HANDOFF_LINGER of the last message, let the next one gather (up to
                # a full batch): a stream of publishes shares messages, a lone publish goes at once.
                until = last_sent + settings.AGENTBOT_HANDOFF_LINGER
                while time.monotonic() < until and self._count() < settings.AGENTBOT_SEND_BATCH:
                    self._cond.wait(until - time.monotonic())
                queued, self._queued, self._sending = self._queued, {}, True
            try:
                for token, ids in queued.items():
                    send(ids, token)
            finally:
                last_sent = time.monotonic()
                with self._cond:
                    self._sending = False
                    self._cond.notify_all()

    def _count(self) -> int:
        return sum(len(ids) for ids in self._queued.values())


def send(ids: list[str], token: str) -> None:
    """Queue deliveries for the workers, AGENTBOT_SEND_BATCH to a message. If the broker is down
    the sweep sends them when their lease runs out."""
    from deliveries.tasks import deliveries_send

    batch = settings.AGENTBOT_SEND_BATCH
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        try:
            # The ids need no repr in the message's headers (saves the time of formatting them).
            deliveries_send.apply_async((chunk, token), argsrepr=f"({len(chunk)} ids)", kwargsrepr="{}")
        except Exception:  # broker unreachable: the lease runs out and the sweep takes over
            logger.warning("could not queue %d deliveries; the sweep will send them", len(chunk), exc_info=True)


_OUTBOX = PerProcess(Outbox)


def outbox() -> Outbox:
    """This process's outbox; a forked child (a Celery pool process) starts its own, empty."""
    return _OUTBOX.get()


@atexit.register
def _flush_at_exit() -> None:
    # A short-lived process (a management command) sends what it published before it goes.
    current = _OUTBOX.current()
    if current is not None:
        current.flush(timeout=5.0)
