"""Deleting a webhook, an event or a site deletes its deliveries and their attempts in the database
too (ON DELETE CASCADE), not only in Django's collector.

The collector deletes a delivery's attempts first and the delivery after: an attempt a worker's
recorder committed in between (for a delivery it had locked) used to survive, and the delete failed
at COMMIT with an IntegrityError (a 500 for DELETE /api/v1/webhooks/{id}). With the cascade in the
database, the delivery's delete takes every attempt there is at that moment with it. The recorder's
side is in deliveries/bulk/postgresql.py (RECORD_SQL): it records only deliveries it could lock.

PostgreSQL only: the embedded SQLite of `make run` has one writer at a time, so no such race.
"""

from django.db import migrations

# (table, column, referenced table)
CASCADES = [
    ("deliveries_attempt", "delivery_id", "deliveries_delivery"),
    ("deliveries_delivery", "webhook_id", "subscriptions_webhook"),
    ("deliveries_delivery", "event_id", "deliveries_event"),
]

SQL = """
DO $$
DECLARE name text;
BEGIN
    SELECT c.conname INTO name
    FROM pg_constraint c
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
    WHERE c.contype = 'f' AND c.conrelid = '{table}'::regclass AND c.confrelid = '{target}'::regclass
      AND a.attname = '{column}';
    IF name IS NOT NULL THEN
        EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', name);
    END IF;
    EXECUTE format(
        'ALTER TABLE {table} ADD CONSTRAINT %I FOREIGN KEY ({column}) REFERENCES {target} (id) '
        'ON DELETE {action} DEFERRABLE INITIALLY DEFERRED NOT VALID',
        coalesce(name, '{table}_{column}_fk')
    );
    EXECUTE format('ALTER TABLE {table} VALIDATE CONSTRAINT %I', coalesce(name, '{table}_{column}_fk'));
END $$;
"""


def alter(action: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table, column, target in CASCADES:
            schema_editor.execute(SQL.format(table=table, column=column, target=target, action=action), params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0004_site_in_core"),
    ]

    operations = [migrations.RunPython(alter("CASCADE"), alter("NO ACTION"))]
