"""The check a PostgreSQL connection passes before the process's pool lends it (settings.py gives
it to psycopg's pool). Imports nothing of Django: the settings module names it."""

import select

import psycopg
from psycopg import pq


def connection_check(conn: psycopg.Connection) -> None:
    """Lend `conn` only if it is open, outside any transaction, and its server has sent nothing
    since the connection came back to the pool. A server that restarted, or ended the session
    (`pg_terminate_backend`, an idle timeout), has closed the socket or sent its last message,
    which makes the socket readable: the pool then drops the connection and lends another.

    This is what psycopg_pool's own check (an empty query) finds, without its round trip, which
    cost a web request about a tenth of its CPU (bench/PROFILE.md). A message the server sends an
    idle session for another reason (a setting reloaded) costs one reconnect, never an error."""
    pgconn = conn.pgconn
    if pgconn.status != pq.ConnStatus.OK or pgconn.transaction_status != pq.TransactionStatus.IDLE:
        raise psycopg.OperationalError("the connection is not open and idle")
    readable, _, _ = select.select([pgconn.socket], [], [], 0)
    if readable:
        raise psycopg.OperationalError("the server closed the connection or spoke while it was idle")
