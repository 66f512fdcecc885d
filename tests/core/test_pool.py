"""The check a pooled PostgreSQL connection passes before it is lent (core/pool.py): a connection
whose server ended it is never handed out, and a healthy one is lent without a round trip."""

import psycopg
import pytest
from django.db import connection

from core.pool import connection_check
from tests.support.worker import test_database_url as database_url

pytestmark = pytest.mark.django_db(transaction=True)


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def terminate(pid: int) -> None:
    with psycopg.connect(database_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        # The server has closed the session once it is gone from pg_stat_activity.
        for _ in range(100):
            if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                return
            admin.execute("SELECT pg_sleep(0.01)")
        raise AssertionError(f"backend {pid} still running")


def test_no_pooled_connection_whose_session_the_server_ended_is_lent_again():
    if connection.vendor != "postgresql" or not getattr(connection, "pool", None):
        pytest.skip("the pool is PostgreSQL's")
    backend_pid()
    connection.close()  # back to the pool
    pool = connection.pool
    idle = [pool.getconn() for _ in range(pool.get_stats()["pool_available"])]
    ended = {conn.info.backend_pid for conn in idle}
    for conn in idle:
        pool.putconn(conn)
    for pid in ended:  # as a server restart does to every one of them
        terminate(pid)

    lent = backend_pid()  # no error: the pool dropped the dead connections and lent a new one

    assert ended and lent not in ended


def test_an_open_idle_connection_passes_and_one_ended_by_the_server_does_not():
    with psycopg.connect(database_url(), autocommit=True) as conn:
        connection_check(conn)
        terminate(conn.info.backend_pid)
        with pytest.raises(psycopg.OperationalError):
            connection_check(conn)


def test_a_connection_left_inside_a_transaction_is_not_lent():
    with psycopg.connect(database_url()) as conn:
        conn.execute("SELECT 1")  # opens a transaction (not autocommit)
        with pytest.raises(psycopg.OperationalError, match="open and idle"):
            connection_check(conn)
