"""The database connection of the running thread, around slow waits; deleting old rows in batches."""

import time

from django.db import connection


def db_connection_release() -> None:
    """Give this thread's database connection back (to the process's pool on PostgreSQL) before it
    waits on something slow: a language model, another process's work. The next query borrows one
    again. A web process's pool is shared by the REST API, the webchat and the webhook channel, so
    nothing may hold a connection while it waits (docs/limits.md). Inside a transaction the
    connection stays: the transaction needs it."""
    if not connection.in_atomic_block:
        connection.close()


def purge_in_batches(queryset, *, batch_size: int, max_seconds: float) -> int:
    """Delete the rows of `queryset` `batch_size` at a time, for at most `max_seconds`; how many.
    Small batches never hold long locks on a large backlog."""
    deleted, started = 0, time.monotonic()
    while time.monotonic() - started < max_seconds:
        ids = list(queryset.values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        queryset.model.objects.filter(id__in=ids).delete()
        deleted += len(ids)
    return deleted
