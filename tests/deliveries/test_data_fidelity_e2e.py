"""What the REST API accepts arrives as the publisher sent it, or is refused at publish.

Published through `POST /api/v1/events` to a real worker and a real receiver; the bytes received
are checked by seed 002's own Node receiver code (tests/support/seed002_receiver.js).
"""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from core.jsjson import MAX_SAFE_INTEGER, dumps
from deliveries.models import Delivery, Event
from tests.support.json_values import json_values, text

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RECEIVER_JS = Path(__file__).parents[1] / "support" / "seed002_receiver.js"

# The request body as three kinds of publisher write it: Python's json (ASCII escapes, `1e-07`,
# `1.0`, `-0.0`), Python's json with UTF-8 text, and JavaScript's JSON.stringify (jsjson.dumps).
ENCODERS = {
    "python": lambda body: json.dumps(body).encode(),
    # an unpaired surrogate has no UTF-8: it is written as its JSON escape
    "python-utf8": lambda body: json.dumps(body, ensure_ascii=False).encode("utf-8", "backslashreplace"),
    "javascript": lambda body: dumps(body) if refused_because(body) is None else json.dumps(body).encode(),
}

unsafe_integers = st.integers(MAX_SAFE_INTEGER + 1, 2**70) | st.integers(-(2**70), -MAX_SAFE_INTEGER - 1)
event_data = st.dictionaries(
    st.one_of(text, st.sampled_from(["0", "10", "2", "b", "a"])),
    json_values(strings=text, max_leaves=12, extra_scalars=unsafe_integers),
    max_size=5,
)


def refused_because(value, path="data") -> str | None:
    """Why the service must refuse this (parsed) data, by docs/guarantees.md's rules; None if it must not."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return None
    if isinstance(value, int):
        return path if abs(value) > MAX_SAFE_INTEGER else None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return path if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        found = refused_because(key, path) if isinstance(key, str) else None
        found = found or refused_because(item, f"{path}.{key}")
        if found:
            return found
    return None


def node_check(lines: list[dict]) -> list[dict]:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed")
    stdin = "".join(json.dumps(line) + "\n" for line in lines)
    done = subprocess.run(["node", str(RECEIVER_JS)], input=stdin, capture_output=True, text=True, timeout=60, check=True)
    # Not splitlines(): JSON.stringify leaves U+2028, U+0085 and other characters splitlines() breaks on.
    return [json.loads(line) for line in done.stdout.split("\n") if line]


def wait_delivered(receiver, delivery_ids: list[str], timeout: float = 30.0) -> dict:
    """The request each delivery made, once all were received and recorded as succeeded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        by_id = {r.headers.get("x-agentbot-delivery-id"): r for r in list(receiver.received)}
        if all(d in by_id for d in delivery_ids):
            done = Delivery.objects.filter(pk__in=delivery_ids, status="succeeded").count()
            if done == len(delivery_ids):
                return by_id
        time.sleep(0.05)
    states = list(Delivery.objects.filter(pk__in=delivery_ids).values_list("id", "status", "attempt_count", "last_error"))
    raise AssertionError(f"not all delivered in {timeout:g} s: {states}")


@pytest.fixture
def subscriber(site, webhook_factory, receiver, workers):
    webhook = webhook_factory(site=site, url=receiver.url, events=["message.created"])
    workers.start()
    return webhook


def publish_raw(api, body: bytes):
    return api.generic("POST", "/api/v1/events", body, content_type="application/json")


# No shrinking: each example is a round trip through a worker, and the failing batch is printed whole.
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
@given(batch=st.lists(st.tuples(event_data, st.sampled_from(sorted(ENCODERS))), min_size=1, max_size=4))
def test_any_json_data_is_refused_at_publish_or_arrives_signed_and_unchanged(api, subscriber, receiver, batch):
    published, checks = [], []
    for data, encoder in batch:
        sent = ENCODERS[encoder]({"event": "message.created", "data": data})
        expected_refusal = refused_because(json.loads(sent)["data"])
        stored_before = Event.objects.count()
        response = publish_raw(api, sent)
        event("refused" if expected_refusal else "accepted")
        if expected_refusal:
            assert response.status_code == 400, (response.status_code, response.content, sent)
            assert "data" in response.json()["message"]
            assert Event.objects.count() == stored_before  # refused means nothing stored
            continue
        assert response.status_code == 201, (response.status_code, response.content, sent)
        (delivery,) = response.json()["deliveries"]
        published.append((delivery["id"], sent))
    try:
        received = wait_delivered(receiver, [delivery_id for delivery_id, _ in published])
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nsent: {[sent for _, sent in published]}") from None
    for delivery_id, sent in published:
        got = received[delivery_id]
        checks.append({"secret": subscriber.secret, "headers": got.headers, "body": got.body.decode(), "sent": sent.decode()})
    for (_, sent), verdict in zip(published, node_check(checks) if checks else [], strict=True):
        assert verdict["ok"], (verdict, sent)
        assert verdict["same_data"], (verdict, sent)


def test_key_order_and_number_text_arrive_as_javascript_reads_the_publishers_request(api, subscriber, receiver):
    # jsonb would have sent {"a":2,"b":1,...}; the large number stuck the delivery as an unsafe int.
    sent = b'{"event":"message.created","data":{"b":1,"a":2,"big":1e300,"n":-0.0,"f":1.50,"e":1E3,"10":0,"2":0}}'
    response = publish_raw(api, sent)
    assert response.status_code == 201, response.content
    (delivery,) = response.json()["deliveries"]
    got = wait_delivered(receiver, [delivery["id"]])[delivery["id"]]
    assert json.loads(got.body)["data"] == {"2": 0, "10": 0, "b": 1, "a": 2, "big": 1e300, "n": 0, "f": 1.5, "e": 1000}
    assert b'"data":{"2":0,"10":0,"b":1,"a":2,"big":1e+300,"n":0,"f":1.5,"e":1000}}' in got.body
    (verdict,) = node_check(
        [{"secret": subscriber.secret, "headers": got.headers, "body": got.body.decode(), "sent": sent.decode()}]
    )
    assert verdict["ok"] and verdict["same_data"], verdict
    # The event's own page shows the data in the same order.
    shown = api.get(f"/api/v1/events/{response.json()['id']}").content
    assert shown.index(b'"b":') < shown.index(b'"a":') < shown.index(b'"big":')
