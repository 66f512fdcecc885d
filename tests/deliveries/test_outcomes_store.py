"""outcomes_store: a batch the database refuses for one row's data is stored row by row."""

import pytest
from django.db import DataError
from django.utils import timezone

from deliveries import bulk
from deliveries.services import send


def outcome(delivery_id: str, **fields) -> bulk.AttemptRecord:
    now = timezone.now()
    values = dict(
        delivery_id=delivery_id,
        token="t",
        number=1,
        at=now,
        status_code=200,
        request_headers={},
        response_headers={"X": "y"},
        response_body="ok",
        duration_ms=5,
        error="",
        succeeded=True,
        status="succeeded",
        schedule_position=1,
        next_attempt_at=None,
    )
    return bulk.AttemptRecord(**{**values, **fields})


def test_one_refused_row_is_stored_without_its_response_and_the_rest_as_they_are(monkeypatch):
    stored: list[bulk.AttemptRecord] = []

    def record(outcomes, *, now):
        if any(o.response_body == "poison" for o in outcomes):
            raise DataError("refused")
        stored.extend(outcomes)

    monkeypatch.setattr(bulk, "record", record)
    batch = [outcome("dlv_1"), outcome("dlv_2", response_body="poison", error="HTTP 500"), outcome("dlv_3")]
    send.outcomes_store(batch, now=timezone.now())

    assert [o.delivery_id for o in stored] == ["dlv_1", "dlv_2", "dlv_3"]
    by_id = {o.delivery_id: o for o in stored}
    assert by_id["dlv_1"] == batch[0] and by_id["dlv_3"] == batch[2]
    assert (by_id["dlv_2"].response_body, by_id["dlv_2"].response_headers) == ("", {})
    assert by_id["dlv_2"].error == "HTTP 500; the receiver's response headers and body could not be stored"
    assert by_id["dlv_2"].status == "succeeded"  # the exchange happened: its outcome is kept


def test_a_database_that_is_down_is_left_to_the_engine_to_retry(monkeypatch):
    from django.db import OperationalError

    def record(outcomes, *, now):
        raise OperationalError("server closed the connection")

    monkeypatch.setattr(bulk, "record", record)
    with pytest.raises(OperationalError):
        send.outcomes_store([outcome("dlv_1"), outcome("dlv_2")], now=timezone.now())
