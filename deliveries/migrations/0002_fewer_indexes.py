"""Six indexes fewer on the two tables every delivery writes to: each index costs every insert, and
every update of a row that fills its page (all of them, freshly inserted), one more entry.

- `Delivery.webhook` and `Attempt.delivery` lose their own index: the composite indexes
  (`delivery_webhook_recent_idx`, `(delivery, number)`) start with the same column and serve every
  lookup and cascade.
- The `varchar_pattern_ops` copies PostgreSQL gets of an indexed text column serve `LIKE 'x%'`,
  which nothing runs on delivery, event or webhook ids: dropped on these two tables.

Only the indexes are dropped: an AlterField would also drop and re-add the foreign keys, which
checks every row again while it locks the tables.
"""

from django.db import migrations, models

# (table, column, suffix): "" is the column's own index, "_like" its varchar_pattern_ops copy.
INDEXES = [
    ("deliveries_delivery", "webhook_id", ""),
    ("deliveries_delivery", "webhook_id", "_like"),
    ("deliveries_delivery", "id", "_like"),
    ("deliveries_delivery", "event_id", "_like"),
    ("deliveries_attempt", "delivery_id", ""),
    ("deliveries_attempt", "delivery_id", "_like"),
]


def indexes_drop(apps, schema_editor) -> None:
    for table, column, suffix in INDEXES:
        name = schema_editor._create_index_name(table, [column], suffix=suffix)
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def indexes_create(apps, schema_editor) -> None:
    postgresql = schema_editor.connection.vendor == "postgresql"
    for table, column, suffix in INDEXES:
        if suffix and not postgresql:
            continue
        name = schema_editor._create_index_name(table, [column], suffix=suffix)
        name, table, column = (schema_editor.quote_name(n) for n in (name, table, column))
        ops = " varchar_pattern_ops" if suffix else ""
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column}{ops})")


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0001_initial"),
        ("subscriptions", "0004_webhook_channel_format"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="attempt",
                    name="delivery",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="attempts",
                        to="deliveries.delivery",
                    ),
                ),
                migrations.AlterField(
                    model_name="delivery",
                    name="webhook",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="deliveries",
                        to="subscriptions.webhook",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(indexes_drop, indexes_create)],
        ),
    ]
