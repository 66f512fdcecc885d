"""The webchat must not starve the REST API: visitors whose model answers take 3 s beside API
publishers, on one real uvicorn process with its database pool (AGENTBOT_DB_POOL_MAX, 8). The
webchat takes a pooled connection only around its queries, never while it waits on the model,
so a publish takes about as long as it does with nobody chatting. bench/webchat_isolation.py
measures the same with 40 visitors and 16 publishers."""

import statistics
import threading
import time

import pytest
import requests

from core.services import api_key_create
from tests.inbound.conftest import SHOP
from tests.support.fake_chat2desk import FakeCompletions
from tests.support.webchat_client import Visitor

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MODEL_SECONDS = 3.0
VISITORS = 20
PUBLISHERS = 4
MESSAGE_EVERY = 4.0
EVENT = {"event": "webhook.test", "data": {"message": "isolation"}}


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def publish_times(url: str, key: str, *, publishers: int, each: int) -> list[float]:
    times: list[float] = []
    errors: list[str] = []

    def publish():
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {key}"
            for _ in range(each):
                started = time.monotonic()
                answer = http.post(f"{url}/api/v1/events", json=EVENT, timeout=30)
                times.append(time.monotonic() - started)
                if answer.status_code != 202 and answer.status_code != 201:
                    errors.append(f"{answer.status_code} {answer.text[:200]}")
                time.sleep(0.05)

    threads = [threading.Thread(target=publish) for _ in range(publishers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return times


def test_webchat_visitors_waiting_on_a_slow_model_leave_the_rest_api_its_latency(site, webchat, start_server):
    model = FakeCompletions(lambda messages: (time.sleep(MODEL_SECONDS), "We open at nine.")[1])
    server = start_server(
        AGENTBOT_LLM_BASE_URL=model.url + "/v1", AGENTBOT_WEBCHAT_ANSWER_WAIT="10", AGENTBOT_WEBCHAT_POLL_INTERVAL="2"
    )
    _, key = api_key_create(site=site)
    visitors = [Visitor() for _ in range(VISITORS)]
    try:
        for visitor in visitors:
            visitor.connect(server.url, webchat.id, origin=SHOP)
        idle = publish_times(server.url, key, publishers=PUBLISHERS, each=10)

        stop = threading.Event()

        def chat(visitor: Visitor, first: float):
            stop.wait(first)
            while not stop.is_set():  # a person's pace: a message every 4 s
                visitor.send("When do you open?")
                stop.wait(MESSAGE_EVERY)

        chatters = [threading.Thread(target=chat, args=(v, n * MESSAGE_EVERY / VISITORS)) for n, v in enumerate(visitors)]
        for thread in chatters:
            thread.start()
        time.sleep(MESSAGE_EVERY)  # every visitor has asked, and the model keeps them waiting
        try:
            busy = publish_times(server.url, key, publishers=PUBLISHERS, each=20)
        finally:
            stop.set()
            for thread in chatters:
                thread.join(timeout=15)
        assert len(model.calls) >= VISITORS, "every visitor's question reached the model"
        assert p95(busy) < max(3 * p95(idle), 0.5), (
            f"publish p95 {p95(busy) * 1000:.0f} ms beside the webchat, {p95(idle) * 1000:.0f} ms idle"
        )
    finally:
        for visitor in visitors:
            visitor.close()
        model.server.shutdown()
