"""The tables every delivery writes to carry only the indexes something reads through: each one
costs every insert, and every update of a row that fills its page, one more entry."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def indexes(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return dict(cursor.fetchall())


@pytest.mark.parametrize(
    "table, expected",
    [
        (
            "deliveries_delivery",
            {
                "(id)",
                "(event_id)",
                "(webhook_id, created_at DESC)",
                "(status, created_at DESC)",
                "(next_attempt_at) WHERE ((status)::text = 'pending'::text)",
                # the head check of ordered delivery (docs/ordering.md)
                "(webhook_id, ordering_key, sequence) WHERE ((ordering_key IS NOT NULL) AND ((status)::text = 'pending'::text))",
            },
        ),
        ("deliveries_attempt", {"(id)", "(delivery_id, number)", "(at)"}),
    ],
)
def test_each_index_serves_a_read_and_none_repeats_another(table, expected):
    if connection.vendor != "postgresql":
        pytest.skip("reads PostgreSQL's catalogue")
    found = indexes(table)
    columns = {definition.split(" USING btree ", 1)[1] for definition in found.values()}
    assert columns == expected, found
