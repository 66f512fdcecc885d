"""Faults injected into a running delivery pipeline: nothing published may be lost.

Each test starts real Celery workers (with beat) on the fault tests' own PostgreSQL and Redis,
publishes a known set of events to local receivers, injects one fault, and counts: every expected
delivery reached a receiver at least once (by X-Agentbot-Delivery-Id) and is `succeeded` in the
database. Delivery is at-least-once, so duplicates are allowed, printed, and bounded
(`Stack.assert_duplicates_within`): every request a receiver got must be an attempt the engine
recorded, except at most one per delivery the fault caught between its request and the record of
it (`Stack.at_risk`, taken right after the fault).
"""

import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.faults.harness import arrivals
from tests.support.receiver import Receiver, held, slow

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

WEBHOOKS = 5  # per test site: each event fans out to 5 deliveries, handed to a worker as one batch
EVENTS = 30
PACE = 0.02  # seconds between events where the fault must land while events still come


def urls(receiver: Receiver, count: int = WEBHOOKS) -> list[str]:
    return [f"{receiver.url}/{n}" for n in range(count)]


def wait_arrivals(receiver: Receiver, count: int, stack, timeout: float = 30) -> None:
    try:
        receiver.wait_for(count, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.worker_logs()}") from None


def test_worker_killed_mid_batch_loses_nothing(stack, receiver):
    receiver.responder = slow(0.5)  # every request stays in flight for a while: the kill cuts some
    worker = stack.start_worker()
    started = time.monotonic()
    publishing = stack.publish_start(events=EVENTS, urls=urls(receiver), interval=PACE)

    wait_arrivals(receiver, 40, stack)
    stack.workers.kill(worker, signal.SIGKILL)
    worker.wait(timeout=10)
    at_risk = stack.at_risk([receiver])
    print(f"\n[fault] SIGKILL after {len(receiver.received)} arrivals; {len(at_risk)} of them unrecorded")
    assert at_risk, "the kill should land while requests are in flight"
    stack.start_worker()  # the restarted worker, and its beat, finish the run
    published = stack.publish_result(publishing)

    tally = stack.settle(set(published.deliveries), [receiver], timeout=60, started=started)
    stack.assert_nothing_lost(tally)
    # The dead worker's sent-but-unrecorded requests go out again when their send lease runs out:
    # the at-risk set, once each. What it had only taken or prefetched was never sent.
    stack.assert_duplicates_within(tally, at_risk)


def test_redis_restart_loses_queued_messages_and_the_sweep_recovers_them(stack, services, receiver):
    gate = threading.Event()
    receiver.responder = held(gate)  # what the worker has sent stays in flight across the restart
    stack.start_worker(AGENTBOT_HTTP_TIMEOUT="10")
    started = time.monotonic()
    publishing = stack.publish_start(events=EVENTS, urls=urls(receiver), interval=PACE)
    try:
        wait_arrivals(receiver, 20, stack)
        # The worker stops taking messages, so the rest of the events wait in Redis, as behind a
        # busy pool.
        assert stack.broker_control("cancel_consumer", "celery", timeout=5), "the worker did not answer"
        published = stack.publish_result(publishing)
        queued = services.redis.queued_tasks("celery")["deliveries.tasks.deliveries_send"]
        assert queued > 0, "some events' deliveries should be waiting in Redis"
        in_flight = len(set(arrivals([receiver])))
        try:
            services.redis.restart()
        finally:
            services.restore()
    finally:
        gate.set()
    print(f"\n[fault] Redis restarted: {queued} queued batches gone, {in_flight} deliveries in flight")
    deadline = time.monotonic() + 30
    while not stack.broker_control("add_consumer", "celery", timeout=1):  # answers once reconnected
        assert time.monotonic() < deadline, f"the worker never reconnected to Redis\n{stack.worker_logs()}"

    tally = stack.settle(set(published.deliveries), [receiver], timeout=60, started=started)
    stack.assert_nothing_lost(tally)
    # Redis holds no delivery state: the lease in PostgreSQL decides who sends, no process dies and
    # the database stays up. Nothing is cut off, so every request must be a recorded attempt.
    stack.assert_duplicates_within(tally)


def first_attempt_fails(receiver: Receiver, seconds: float):
    """Each delivery's first request is answered 503 after `seconds`, later ones 200 at once."""

    def respond(number: int) -> tuple[int, bytes]:
        requests = receiver.received[:number]
        delivery = requests[-1].headers.get("x-agentbot-delivery-id")
        if sum(r.headers.get("x-agentbot-delivery-id") == delivery for r in requests) == 1:
            time.sleep(seconds)
            return 503, b'{"error":"busy"}'
        return 200, b'{"ok":true}'

    return respond


def test_postgres_restart_mid_run_loses_nothing(stack, services, receiver):
    # First attempts are in flight when the server goes, and every delivery then needs a retry
    # that only the sweep hands out: the workers must use the restarted server. One pool process,
    # so the process that sweeps afterwards is certainly one whose connection the restart cut.
    receiver.responder = first_attempt_fails(receiver, 1.0)
    stack.start_worker(concurrency=1, AGENTBOT_HTTP_TIMEOUT="3")
    started = time.monotonic()
    published = stack.publish(events=EVENTS, urls=urls(receiver))
    expected = set(published.deliveries)
    stack.wait_arrived(expected, [receiver], timeout=30)  # every batch taken, the last ones in flight
    try:
        services.postgres.restart()
    finally:
        services.restore()
    at_risk = stack.at_risk([receiver])
    print(f"\n[fault] PostgreSQL restarted; {len(expected) - len(at_risk)} of {len(expected)} first attempts recorded")

    # By design each delivery arrives twice: 503, then 200.
    tally = stack.settle(expected, [receiver], timeout=30, started=started, designed=2)
    stack.assert_nothing_lost(tally)
    stack.assert_duplicates_within(tally, at_risk)


def test_receiver_down_for_the_whole_schedule_gets_the_rest_by_bulk_redeliver(stack, receiver):
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    port = receiver.server.server_port
    receiver.close()  # down: connections are refused
    schedule = "0,0.5,0.5"
    stack.start_worker(AGENTBOT_RETRY_SCHEDULE=schedule)
    published = stack.publish(events=10, urls=urls(receiver, 2))
    expected = set(published.deliveries)

    stack.wait_statuses(expected, "failed", timeout=30)
    assert stack.attempts(expected) == len(expected) * len(schedule.split(","))

    back = Receiver(port=port)
    try:
        started = time.monotonic()
        stack.redeliver(published.webhooks, since)
        tally = stack.settle(expected, [back], timeout=30, started=started)
    finally:
        back.close()
    stack.assert_nothing_lost(tally)
    # Nothing reached the receiver while it was down, and the redeliver hands each failed delivery
    # out once, under one lease, with no fault after it: every request is a recorded attempt.
    stack.assert_duplicates_within(tally)


def test_one_hanging_receiver_does_not_hold_up_the_healthy_ones(stack, receiver):
    hanging = Receiver()
    hanging.responder = lambda n: (None, b"")  # takes the request, never answers
    timeout = 2.0
    try:
        stack.start_worker(AGENTBOT_HTTP_TIMEOUT=str(timeout), AGENTBOT_RETRY_SCHEDULE="0")
        published = stack.publish(events=EVENTS, urls=[hanging.url, *urls(receiver, 3)])
        published_at = time.monotonic()
        hung_hook = next(w for w, url in published.webhooks.items() if url == hanging.url)
        healthy = published.of(set(published.webhooks) - {hung_hook})

        tally = stack.settle(healthy, [receiver], timeout=60, started=published_at)
        stack.assert_nothing_lost(tally)
        stack.assert_duplicates_within(tally)
        # Each event's batch holds one request to the hanging receiver. A healthy delivery may wait
        # for that request's timeout once (its batch), but not for one timeout per queued batch.
        bound = timeout + 3
        assert tally.seconds <= bound, f"healthy deliveries took {tally.seconds:.1f} s after publishing, bound {bound:g} s"

        stalled = published.of({hung_hook})
        stack.wait_statuses(stalled, "failed", timeout=30)
        assert set(arrivals([hanging])) == stalled
        print(f"[fault] the hanging receiver got {len(hanging.received)} requests, each timed out after {timeout:g} s")
    finally:
        hanging.close()
