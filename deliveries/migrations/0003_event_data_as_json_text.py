"""Event data becomes JSON text (PostgreSQL `json`, not `jsonb`), kept as JavaScript serialises it.

The type change keeps each row's value; its text is then `jsonb`'s (`{"a": 1, "b": 2}`, spaces and
sorted keys), which a delivery would now send as it is. So every stored value is rewritten once in
JavaScript's serialisation: the bytes the previous code rendered from it at each send, so a
delivery still pending (or redelivered later) signs the same body as before. Events published
from now on are stored in that serialisation at publish, in the publisher's key order.
"""

from django.db import migrations

import deliveries.models

BATCH = 2000


def canonical_data(apps, schema_editor):
    Event = apps.get_model("deliveries", "Event")
    last = ""
    while True:
        # The field reads the old text with JSON.parse's rules and writes JavaScript's serialisation.
        batch = list(Event.objects.filter(pk__gt=last).order_by("pk").only("id", "data")[:BATCH])
        if not batch:
            return
        Event.objects.bulk_update(batch, ["data"])
        last = batch[-1].pk


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0002_fewer_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="event",
            name="data",
            field=deliveries.models.JSONTextField(),
        ),
        migrations.RunPython(canonical_data, migrations.RunPython.noop, elidable=True),
    ]
