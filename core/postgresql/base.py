"""Django's PostgreSQL backend (settings: ENGINE "core.postgresql"), whose pooled connections are
checked before a request or task gets one by core/pool.py's `connection_check`, without the round
trip of the empty query Django has the pool send (CONN_HEALTH_CHECKS, off for this backend)."""

import psycopg
from django.db.backends.postgresql import base

from core.pool import connection_check


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        if not self.pool:
            return super().get_new_connection(conn_params)
        # Every connection the pool holds may have been ended by the server (a restart): at most
        # that many are dropped before a fresh one, whose failure is the borrower's error.
        for _ in range(self.pool.max_size):
            conn = super().get_new_connection(conn_params)
            try:
                connection_check(conn)
            except psycopg.OperationalError:
                conn.close()
                self.pool.putconn(conn)  # a closed connection is dropped and replaced by the pool
                continue
            return conn
        return super().get_new_connection(conn_params)
