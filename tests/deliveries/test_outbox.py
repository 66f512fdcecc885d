"""The outbox: publishes of one process share a message when they come in a burst."""

import threading
import time

from deliveries.engine import outbox


def test_ids_put_while_a_send_is_under_way_go_out_together_in_the_next_one(monkeypatch):
    sent, first_started, release = [], threading.Event(), threading.Event()

    def send(ids, token):
        sent.append((list(ids), token))
        first_started.set()
        release.wait(5)

    monkeypatch.setattr(outbox, "enqueue", send)
    box = outbox.Outbox()
    token = box.token()
    box.put(["d1"], token)
    assert first_started.wait(5)
    box.put(["d2", "d3"], token)  # the thread is busy sending d1: these wait together
    box.put(["d4"], token)
    release.set()

    assert box.flush(timeout=5)
    assert sent == [(["d1"], token), (["d2", "d3", "d4"], token)]


def test_publishes_share_a_token_for_a_second_then_get_a_new_one():
    now = [1000.0]
    box = outbox.Outbox(clock=lambda: now[0])
    first = box.token()
    now[0] += 0.5
    assert box.token() == first
    now[0] += outbox.TOKEN_LIFETIME
    assert box.token() != first


def test_flush_with_nothing_queued_returns_at_once():
    assert outbox.Outbox().flush(timeout=0.1)


def test_a_lone_publish_goes_at_once_and_a_stream_right_after_it_gathers_into_one_message(monkeypatch, settings):
    settings.AGENTBOT_HANDOFF_LINGER = 3.0
    sent, first_sent = [], threading.Event()

    def send(ids, token):
        sent.append(list(ids))
        first_sent.set()

    monkeypatch.setattr(outbox, "enqueue", send)
    box = outbox.Outbox()
    token = box.token()
    started = time.monotonic()
    box.put(["d1"], token)
    assert first_sent.wait(5)
    assert time.monotonic() - started < settings.AGENTBOT_HANDOFF_LINGER, "nothing sent before: no wait"
    box.put(["d2"], token)  # within the linger after d1's message: these gather
    box.put(["d3", "d4"], token)
    time.sleep(0.2)
    assert sent == [["d1"]]

    assert box.flush(timeout=10)
    assert sent == [["d1"], ["d2", "d3", "d4"]]


def test_a_full_batch_does_not_wait_for_the_linger(monkeypatch, settings):
    settings.AGENTBOT_HANDOFF_LINGER = 30.0
    settings.AGENTBOT_SEND_BATCH = 3
    sent = []
    monkeypatch.setattr(outbox, "enqueue", lambda ids, token: sent.append(list(ids)))
    box = outbox.Outbox()
    token = box.token()
    box.put(["d1"], token)
    assert box.flush(timeout=5)
    box.put(["d2", "d3"], token)
    box.put(["d4"], token)
    assert box.flush(timeout=5)
    assert sent == [["d1"], ["d2", "d3", "d4"]]
