"""deliveries 0003: event data moves from `jsonb` to `json` text in JavaScript's serialisation."""

import pytest
from django.db import connection

from tests.support.migrations import migrate, migrate_latest

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("deliveries", "0002_fewer_indexes")
AFTER = ("deliveries", "0003_event_data_as_json_text")


def column_type() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'deliveries_event' AND column_name = 'data'"
        )
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the column types are PostgreSQL's")
def test_stored_events_keep_their_value_and_are_rewritten_as_a_delivery_sent_them(site):
    migrate(BEFORE)
    try:
        assert column_type() == "jsonb"
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO deliveries_event (id, site_id, type, data, created_at) VALUES (%s, %s, %s, %s::jsonb, now())",
                ["evt_old", site.id, "message.created", '{"b": 1, "a": [1.0, "é"], "big": 1e300}'],
            )
        migrate(AFTER)
        assert column_type() == "json"
        with connection.cursor() as cursor:
            cursor.execute("SELECT data::text FROM deliveries_event WHERE id = 'evt_old'")
            (text,) = cursor.fetchone()
        # jsonb had already sorted the keys and written the number out in 301 digits: the value is
        # what it held, written as JavaScript reads and prints it (the old worker read those digits
        # as an integer beyond 2**53 and could never render the event).
        assert text == '{"a":[1,"é"],"b":1,"big":1e+300}'
    finally:
        migrate_latest()
