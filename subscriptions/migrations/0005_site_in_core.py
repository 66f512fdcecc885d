"""A webhook's site is core's Site now (the same table)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("subscriptions", "0004_webhook_channel_format"),
    ]

    operations = [
        # The tables exist already (made by agentbot's migrations, kept with their names): only
        # Django's picture of which app owns them changes. No table is created, altered or copied.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="webhook",
                    name="site",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="webhooks", to="core.site"),
                ),
            ],
            database_operations=[],
        ),
    ]
