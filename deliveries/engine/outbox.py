"""The outbox: delivery ids enqueued for the workers, batched across transactions.

To *enqueue* is to put delivery ids on the Celery queue (`enqueue`), a message of up to
AGENTBOT_SEND_BATCH ids that a worker's `deliveries.tasks.deliveries_send` takes. A publish's
commit only appends its ids to this process's outbox, and one thread enqueues what has gathered:
alone when publishes are far apart (no added wait), many events to a message when they come in a
burst or a steady stream (a message gathers for up to AGENTBOT_HANDOFF_LINGER after the previous
one). A message per event would cost a worker task and a lease swap per event under a burst.

The ids go under a *dispatch lease* (`lease_token`, `dispatch_until`: the token every write that
moves the delivery on must name, and its end), taken by publish, the sweep and a person's retry.
Publishes in one process share a dispatch lease token for a second at a time, so one message can
carry the deliveries of many events. Nothing here is needed for safety: until a worker takes them,
the deliveries are in the database under their dispatch lease, and if this process dies with ids
unsent, or the broker refuses them, the sweep enqueues them when the lease runs out.
"""

import atexit
import logging
import secrets
import threading
import time
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import connection

from core.process import PerProcess

logger = logging.getLogger(__name__)

SEND_TASK = "deliveries.tasks.deliveries_send"  # deliveries/tasks.py registers it under this name
TOKEN_LIFETIME = 1.0  # seconds one shared dispatch token is handed to new publishes


def lease_token() -> str:
    """A new lease's token: every write that moves a delivery on names the token of its lease."""
    return secrets.token_hex(16)


def dispatch_until(now: datetime) -> datetime:
    """The end of a dispatch lease taken now: until then no sweep enqueues the delivery again."""
    return now + timedelta(seconds=settings.AGENTBOT_DISPATCH_LEASE)


class Outbox:
    """The ids queued by this process's publishes and the thread that sends them (see this_process())."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._queued: dict[str, list[str]] = {}  # token -> ids, in arrival order
        self._behind: list[str] = []  # ordered deliveries stored behind their key's head
        self._sending = False
        self._thread: threading.Thread | None = None
        self._token, self._token_born = "", float("-inf")

    def token(self) -> str:
        """The dispatch lease token for a publish now (shared by this process's publishes for a second)."""
        with self._cond:
            now = self._clock()
            if now - self._token_born > TOKEN_LIFETIME:
                self._token, self._token_born = lease_token(), now
            return self._token

    def put(self, ids: list[str], token: str) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deliveries-outbox", daemon=True)
                self._thread.start()
            self._queued.setdefault(token, []).extend(ids)
            self._cond.notify_all()

    def put_behind(self, ids: list[str]) -> None:
        """Ordered deliveries stored without a lease behind a pending one of their key: the thread
        enqueues those whose key's head has ended by now (see deliveries_next)."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deliveries-outbox", daemon=True)
                self._thread.start()
            self._behind.extend(ids)
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until everything put has been sent (or refused); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queued or self._behind or self._sending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        last_sent = float("-inf")
        while True:
            with self._cond:
                while not self._queued and not self._behind:
                    self._cond.wait()
                # Within AGENTBOT_HANDOFF_LINGER of the last message, let the next one gather (up to
                # a full batch): a stream of publishes shares messages, a lone publish goes at once.
                until = last_sent + settings.AGENTBOT_HANDOFF_LINGER
                while time.monotonic() < until and self._count() < settings.AGENTBOT_SEND_BATCH:
                    self._cond.wait(until - time.monotonic())
                queued, self._queued, self._sending = self._queued, {}, True
                behind, self._behind = self._behind, []
            try:
                if behind:
                    try:
                        enqueue_next(behind)
                    finally:
                        connection.close()  # the thread's own connection: back to the pool
                for token, ids in queued.items():
                    enqueue(ids, token)
            finally:
                last_sent = time.monotonic()
                with self._cond:
                    self._sending = False
                    self._cond.notify_all()

    def _count(self) -> int:
        return sum(len(ids) for ids in self._queued.values())


def enqueue(ids: list[str], token: str) -> None:
    """Put deliveries on the workers' queue, AGENTBOT_SEND_BATCH to a message. If the broker is
    down the sweep enqueues them when their lease runs out."""
    batch = settings.AGENTBOT_SEND_BATCH
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        try:
            # The ids need no repr in the message's headers (saves the time of formatting them).
            # By the task's name, as inbound_enqueue does: the tasks module imports the services,
            # which import this module, so importing the task here would close a circle.
            current_app.send_task(SEND_TASK, args=(chunk, token), argsrepr=f"({len(chunk)} ids)", kwargsrepr="{}")
        except Exception:  # broker unreachable: the lease runs out and the sweep takes over
            logger.warning("could not queue %d deliveries; the sweep will send them", len(chunk), exc_info=True)


def enqueue_next(ids: list[str]) -> None:
    """Enqueue the head of each ordering key of `ids` if it is free to go now (bulk.claim_next)."""
    from django.utils import timezone

    from deliveries import bulk

    token, now = lease_token(), timezone.now()
    try:
        claimed = bulk.claim_next(ids=ids, now=now, until=dispatch_until(now), token=token)
    except Exception:  # the sweep enqueues them
        logger.warning("could not look for the next deliveries of %d ordering keys", len(ids), exc_info=True)
        return
    if claimed:
        enqueue(claimed, token)


_OUTBOX = PerProcess(Outbox)


def this_process() -> Outbox:
    """This process's outbox; a forked child (a Celery pool process) starts its own, empty."""
    return _OUTBOX.get()


@atexit.register
def _flush_at_exit() -> None:
    # A short-lived process (a management command) sends what it published before it goes.
    current = _OUTBOX.current()
    if current is not None:
        current.flush(timeout=5.0)
