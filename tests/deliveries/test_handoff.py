"""The hand-off outbox: publishes of one process share a message when they come in a burst."""

import threading

from deliveries import handoff


def test_ids_put_while_a_send_is_under_way_go_out_together_in_the_next_one(monkeypatch):
    sent, first_started, release = [], threading.Event(), threading.Event()

    def send(ids, token):
        sent.append((list(ids), token))
        first_started.set()
        release.wait(5)

    monkeypatch.setattr(handoff, "send", send)
    outbox = handoff.Outbox()
    token = outbox.token()
    outbox.put(["d1"], token)
    assert first_started.wait(5)
    outbox.put(["d2", "d3"], token)  # the thread is busy sending d1: these wait together
    outbox.put(["d4"], token)
    release.set()

    assert outbox.flush(timeout=5)
    assert sent == [(["d1"], token), (["d2", "d3", "d4"], token)]


def test_publishes_share_a_token_for_a_second_then_get_a_new_one():
    now = [1000.0]
    outbox = handoff.Outbox(clock=lambda: now[0])
    first = outbox.token()
    now[0] += 0.5
    assert outbox.token() == first
    now[0] += handoff.TOKEN_LIFETIME
    assert outbox.token() != first


def test_flush_with_nothing_queued_returns_at_once():
    assert handoff.Outbox().flush(timeout=0.1)
