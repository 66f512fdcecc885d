"""The database connection of the running thread, around slow waits."""

from django.db import connection


def db_connection_release() -> None:
    """Give this thread's database connection back (to the process's pool on PostgreSQL) before it
    waits on something slow: a language model, another process's work. The next query borrows one
    again. A web process's pool is shared by the REST API, the webchat and the webhook channel, so
    nothing may hold a connection while it waits (docs/limits.md). Inside a transaction the
    connection stays: the transaction needs it."""
    if not connection.in_atomic_block:
        connection.close()
