"""Moving the test database to a migration and back, for the tests of one migration."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def migrate_latest() -> None:
    """Back to every app's latest migration, as the other tests expect the schema to be (a test of
    one migration that stopped at it left the columns of later migrations missing)."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
