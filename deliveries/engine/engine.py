"""The delivery engine of one worker process.

A Celery task takes a batch of deliveries (a send lease) and hands them here, and returns: the
batch is sent concurrently on the process's HTTP client, at most AGENTBOT_WEBHOOK_CONCURRENCY at a
time per webhook, so a slow endpoint holds only its own slots, and a recorder thread writes the
outcomes in bulk as they complete.

How many jobs of one webhook the engine holds follows how fast that webhook answers: enough for
AGENTBOT_WEBHOOK_QUEUE_ROUNDS request timeouts of waiting. A fast webhook can have thousands
queued; one that hangs keeps a few rounds, and its further deliveries are not taken at all: their
dispatch lease is cut to `overflow_hold()`, and the sweep hands them out again when it runs out. A
job that still waited too long for a slot is not sent but handed back, so nothing is ever sent
after its send lease (`send_lease()`) could have run out.

Nothing here is the source of truth: if the process dies, the leases run out and the sweep hands
the deliveries out again.
"""

import asyncio
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection

from core.logging import log_delivery
from core.process import PerProcess
from deliveries.engine import amqp, http, oauth
from deliveries.engine.endpoint_auth import NO_CONTROLS, Controls
from deliveries.formats import get_format
from deliveries.formats.types import Signing
from subscriptions.url_policy import is_broker_url

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Job:
    """One attempt of one delivery: rendered body and signing secrets; signed when it is sent."""

    delivery_id: str
    token: str
    webhook_id: str
    event_id: str
    url: str
    format: str
    event_type: str
    body: bytes
    secrets: list[str]
    attempt_count: int
    schedule_position: int
    # A broker destination (an amqp(s) URL): where to publish, and the password to connect with.
    exchange: str = ""
    routing_key: str = ""
    broker_password: str = field(default="", repr=False)
    # The webhook's headers, authentication and TLS (deliveries/engine/endpoint_auth.py).
    controls: Controls = field(default=NO_CONTROLS, repr=False)
    # Seconds between two sends to its webhook under its rate limit (None: no limit), and the
    # time.monotonic() before which it must not start (deliveries/engine/rate_limit.py).
    rate_interval: float | None = None
    not_before: float = 0.0
    # Its ordering key (None: unordered): the next delivery of the key goes when this one ends.
    ordering_key: str | None = None
    deadline: float = 0.0  # time.monotonic() after which the attempt must not start any more
    started: datetime | None = None
    request: http.OutboundRequest | None = None
    done: "Latch | None" = field(default=None, repr=False)

    def sign(self) -> http.OutboundRequest:
        """Sign with the moment of sending, so a wait for a slot never ages the signature."""
        self.started = datetime.now(UTC)
        signing = Signing(self.delivery_id, self.event_type, self.body, self.secrets, int(self.started.timestamp()))
        headers = get_format(self.format).headers(signing)
        if self.controls.headers:  # the webhook's own first: the service's headers always win
            headers = {**self.controls.headers, **headers}
        self.request = http.OutboundRequest(self.url, self.body, headers, ssl=self.controls.ssl)
        return self.request

    @property
    def is_broker(self) -> bool:
        return is_broker_url(self.url)

    def broker_message(self) -> amqp.BrokerMessage:
        """The signed attempt as a message for the broker (sign() first): the same headers, the
        routing key the webhook's or else the event's type."""
        return amqp.BrokerMessage(
            url=self.url,
            password=self.broker_password,
            exchange=self.exchange,
            routing_key=self.routing_key or self.event_type,
            body=self.body,
            headers=self.request.headers,
            message_id=self.delivery_id,
            type=self.event_type,
            channel_owner=self.webhook_id,
            timestamp=self.started,
        )

    async def send(self) -> http.OutboundResult:
        """Sign and send: POSTed, or published to the webhook's broker."""
        request = self.sign()
        if self.is_broker:
            return await amqp.publish(self.broker_message())
        if self.controls.oauth2 is not None:
            return await oauth.send_with_token(self.webhook_id, self.controls.oauth2, request)
        return await http.send(request)


class Latch:
    """Lets a synchronous caller wait until its jobs are recorded."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.cond = threading.Condition()

    def count_down(self, n: int = 1) -> None:
        with self.cond:
            self.left -= n
            if self.left <= 0:
                self.cond.notify_all()

    def wait(self, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.left <= 0, timeout)


# Writing a batch is tried for about 15 s (a database restart) before its leases are left to run out.
RECORD_TRIES = 6

# A job with no queue to wait in still needs a moment to reach the event loop.
START_GRACE = 1.0

# Seconds per request assumed of a webhook not heard from yet: a new webhook may queue a few
# hundred jobs at once, and as it keeps silent its assumed pace grows with the silence.
START_PACE = 1.0


def queue_budget() -> float:
    """Seconds a job may wait for a slot of its webhook."""
    return settings.AGENTBOT_WEBHOOK_QUEUE_ROUNDS * settings.AGENTBOT_HTTP_TIMEOUT


def send_lease() -> timedelta:
    """Long enough for a job to wait its budget, be sent, time out and be recorded (the dispatch
    lease's length is the margin for recording)."""
    seconds = queue_budget() + START_GRACE + settings.AGENTBOT_HTTP_TIMEOUT + settings.AGENTBOT_DISPATCH_LEASE
    return timedelta(seconds=seconds)


def overflow_hold() -> timedelta:
    """How long a saturated webhook's overflow waits before the sweep offers it again: a full
    queue holds a queue budget of work, so about when half of it has been sent."""
    return timedelta(seconds=max(queue_budget() / 2, settings.AGENTBOT_SWEEP_INTERVAL))


Record = Callable[[list[tuple[Job, http.OutboundResult]]], None]
Release = Callable[[list[Job]], None]


class Engine:
    def __init__(self, record: Record, release: Release) -> None:
        self.client = http.client()
        self.loop = self.client.loop
        self.record = record
        self.release = release
        self.cond = threading.Condition()
        self.held = 0  # jobs admitted and not yet recorded
        self.per_webhook: Counter[str] = Counter()
        self.seconds_per_request: dict[str, float] = {}  # per webhook, a moving average
        self.quiet_since: dict[str, float] = {}  # per webhook holding jobs: its last answer (or first job)
        self.slots: dict[str, asyncio.Semaphore] = {}  # used on the loop only
        self.results: queue.SimpleQueue = queue.SimpleQueue()
        self.recorder = threading.Thread(target=self._record_forever, name="webhook-recorder", daemon=True)
        self.recorder.start()

    # --- called from the task's thread -------------------------------------------------------
    def wait_for_room(self, count: int, timeout: float) -> bool:
        limit = settings.AGENTBOT_ENGINE_MAX_JOBS
        with self.cond:
            return self.cond.wait_for(lambda: self.held == 0 or self.held + count <= limit, timeout)

    def pace(self, webhook_id: str) -> float:
        """Seconds per request of this webhook: its recent average, or more if it has been silent
        for longer than that while holding jobs (a webhook that starts hanging)."""
        pace = self.seconds_per_request.get(webhook_id, START_PACE)
        since = self.quiet_since.get(webhook_id)
        return pace if since is None else max(pace, time.monotonic() - since)

    def webhook_limit(self, webhook_id: str) -> int:
        """Jobs of this webhook that drain within the queue budget at its pace."""
        slots = settings.AGENTBOT_WEBHOOK_CONCURRENCY
        return slots + int(slots * queue_budget() / max(self.pace(webhook_id), 0.001))

    def saturated(self) -> list[str]:
        """Webhooks that cannot take another job now."""
        with self.cond:
            return [w for w, held in self.per_webhook.items() if held >= self.webhook_limit(w)]

    def submit(self, jobs: list[Job]) -> list[Job]:
        """Start sending `jobs`; returns those refused because their webhook's queue is full."""
        admitted, refused = [], []
        with self.cond:
            for job in jobs:
                if self.per_webhook[job.webhook_id] >= self.webhook_limit(job.webhook_id):
                    refused.append(job)
                else:
                    if not self.per_webhook[job.webhook_id]:
                        self.quiet_since[job.webhook_id] = time.monotonic()
                    self.per_webhook[job.webhook_id] += 1
                    admitted.append(job)
            self.held += len(admitted)
        if admitted:
            self.loop.call_soon_threadsafe(self._start, admitted)
        return refused

    # --- on the loop -------------------------------------------------------------------------
    def _start(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.loop.create_task(self._send(job))

    async def _send(self, job: Job) -> None:
        slots = self.slots.get(job.webhook_id)
        if slots is None:
            slots = self.slots[job.webhook_id] = asyncio.Semaphore(settings.AGENTBOT_WEBHOOK_CONCURRENCY)
        result = None
        try:
            wait = job.not_before - time.monotonic()
            if wait > 0:  # the webhook's rate limit spaces its sends (deliveries/engine/rate_limit.py)
                await asyncio.sleep(wait)
                job.deadline += wait
            async with slots:
                # Waited too long for a slot: the lease may not cover the request; hand it back.
                if time.monotonic() <= job.deadline:
                    result = await job.send()
                    self._pace(job.webhook_id, result.duration_ms / 1000)
        except Exception as exc:  # a bug must not leak the job's place in the engine
            log_delivery(
                logger,
                logging.ERROR,
                "sending failed",
                delivery_id=job.delivery_id,
                event_id=job.event_id,
                webhook_id=job.webhook_id,
                exc_info=True,
            )
            result = http.OutboundResult(error=f"internal error: {type(exc).__name__}")
        self.results.put((job, result))

    def _pace(self, webhook_id: str, seconds: float) -> None:
        previous = self.seconds_per_request.get(webhook_id)
        self.seconds_per_request[webhook_id] = seconds if previous is None else 0.8 * previous + 0.2 * seconds
        self.quiet_since[webhook_id] = time.monotonic()

    # --- the recorder thread -----------------------------------------------------------------
    def _record_forever(self) -> None:
        batch_max = settings.AGENTBOT_RECORD_BATCH
        while True:
            batch = [self.results.get()]
            if batch[0] is None:
                connection.close()
                return
            # Wait a moment for company: one statement for many attempts costs the database less.
            linger_until = time.monotonic() + settings.AGENTBOT_RECORD_LINGER
            while len(batch) < batch_max:
                left = linger_until - time.monotonic()
                try:
                    item = self.results.get(timeout=left) if left > 0 else self.results.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.results.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._write(batch)
            self._release(batch)

    def _write(self, batch: list[tuple[Job, http.OutboundResult | None]]) -> None:
        sent = [(job, result) for job, result in batch if result is not None]
        unsent = [job for job, result in batch if result is None]
        for attempt in range(RECORD_TRIES):
            try:
                if sent:
                    self.record(sent)
                if unsent:
                    self.release(unsent)
                return
            except Exception:
                logger.exception("recording %d attempts failed (try %d of %d)", len(batch), attempt + 1, RECORD_TRIES)
                connection.close()  # reconnect on the next try: the database may have restarted
                time.sleep(min(0.25 * 2**attempt, 4.0))
        # The deliveries keep their leases until they run out; then the sweep sends them again.

    def _release(self, batch: list[tuple[Job, http.OutboundResult]]) -> None:
        with self.cond:
            self.held -= len(batch)
            for job, _ in batch:
                self.per_webhook[job.webhook_id] -= 1
                if not self.per_webhook[job.webhook_id]:
                    del self.per_webhook[job.webhook_id]
                    self.quiet_since.pop(job.webhook_id, None)
            self.cond.notify_all()
        for job, _ in batch:
            if job.done is not None:
                job.done.count_down()

    def drain(self, timeout: float) -> bool:
        """Wait for what is in flight to be sent and recorded (a worker's warm shutdown)."""
        with self.cond:
            return self.cond.wait_for(lambda: self.held == 0, timeout)


_ENGINE: PerProcess[Engine] = PerProcess(Engine)


def engine(record: Record, release: Release) -> Engine:
    """This process's engine; a forked child starts its own. `record` and `release` are the
    services it calls with what it sent and what it gave back."""
    return _ENGINE.get(record, release)


def engine_stop(timeout: float) -> None:
    """Let what is in flight be sent and recorded (at most `timeout` seconds), then stop recording."""
    running = _ENGINE.current()
    if running is None:
        return
    if not running.drain(timeout):
        logger.warning("stopping with %d deliveries in flight; the sweep sends them once their leases run out", running.held)
    running.results.put(None)
    running.recorder.join(timeout=5)
    amqp.pool_stop()
    _ENGINE.forget()
