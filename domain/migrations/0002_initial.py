"""The domain's relations and indexes, as agentbot's migrations made them."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("core", "0001_initial"),
        ("domain", "0001_initial"),
        ("inbound", "0001_initial"),
    ]

    operations = [
        # The tables exist already (made by agentbot's migrations, kept with their names): only
        # Django's picture of which app owns them changes. No table is created, altered or copied.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="conversation",
                    name="integration",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="conversations",
                        to="inbound.integration",
                    ),
                ),
                migrations.AddField(
                    model_name="conversation",
                    name="site",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="conversations", to="core.site"
                    ),
                ),
                migrations.AddField(
                    model_name="appointment",
                    name="conversation",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="%(class)ss",
                        to="domain.conversation",
                    ),
                ),
                migrations.AddField(
                    model_name="lead",
                    name="conversation",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="%(class)ss",
                        to="domain.conversation",
                    ),
                ),
                migrations.AddField(
                    model_name="lead",
                    name="site",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="%(class)ss", to="core.site"
                    ),
                ),
                migrations.AddField(
                    model_name="message",
                    name="conversation",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="messages", to="domain.conversation"
                    ),
                ),
                migrations.AddField(
                    model_name="ticket",
                    name="conversation",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="tickets",
                        to="domain.conversation",
                    ),
                ),
                migrations.AddField(
                    model_name="ticket",
                    name="site",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="tickets", to="core.site"),
                ),
                migrations.AddIndex(
                    model_name="conversation",
                    index=models.Index(fields=["site", "-created_at"], name="conversation_site_recent_idx"),
                ),
                migrations.AddIndex(
                    model_name="conversation",
                    index=models.Index(
                        condition=models.Q(("status", "open")),
                        fields=["integration", "external_id"],
                        name="conversation_open_visitor_idx",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="conversation",
                    constraint=models.UniqueConstraint(fields=("site", "number"), name="conversation_number_per_site"),
                ),
                migrations.AddIndex(
                    model_name="appointment",
                    index=models.Index(fields=["site", "-created_at"], name="appointment_site_recent_idx"),
                ),
                migrations.AddIndex(
                    model_name="lead",
                    index=models.Index(fields=["site", "-created_at"], name="lead_site_recent_idx"),
                ),
                migrations.AddIndex(
                    model_name="message",
                    index=models.Index(fields=["conversation", "created_at"], name="message_conversation_idx"),
                ),
                migrations.AddIndex(
                    model_name="ticket",
                    index=models.Index(fields=["site", "-created_at"], name="ticket_site_recent_idx"),
                ),
            ],
            database_operations=[],
        ),
    ]
