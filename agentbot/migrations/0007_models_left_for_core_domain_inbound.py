"""The agentbot app keeps no models: core, domain and inbound own its tables from here on."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("domain", "0002_initial"),
        ("inbound", "0001_initial"),
        ("subscriptions", "0005_site_in_core"),
        ("deliveries", "0004_site_in_core"),
        ("agentbot", "0006_inbound_event_unmatched"),
    ]

    operations = [
        # The tables exist already (made by agentbot's migrations, kept with their names): only
        # Django's picture of which app owns them changes. No table is created, altered or copied.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name="appointment",
                    name="conversation",
                ),
                migrations.RemoveField(
                    model_name="appointment",
                    name="site",
                ),
                migrations.RemoveField(
                    model_name="conversation",
                    name="integration",
                ),
                migrations.RemoveField(
                    model_name="conversation",
                    name="site",
                ),
                migrations.RemoveField(
                    model_name="message",
                    name="conversation",
                ),
                migrations.RemoveField(
                    model_name="lead",
                    name="conversation",
                ),
                migrations.RemoveField(
                    model_name="inboundevent",
                    name="conversation",
                ),
                migrations.RemoveField(
                    model_name="ticket",
                    name="conversation",
                ),
                migrations.RemoveField(
                    model_name="inboundevent",
                    name="integration",
                ),
                migrations.RemoveField(
                    model_name="integration",
                    name="reply_webhook",
                ),
                migrations.RemoveField(
                    model_name="integration",
                    name="site",
                ),
                migrations.RemoveField(
                    model_name="knowledgeentry",
                    name="site",
                ),
                migrations.RemoveField(
                    model_name="lead",
                    name="site",
                ),
                migrations.RemoveField(
                    model_name="ticket",
                    name="site",
                ),
                migrations.DeleteModel(
                    name="ApiKey",
                ),
                migrations.DeleteModel(
                    name="Appointment",
                ),
                migrations.DeleteModel(
                    name="Message",
                ),
                migrations.DeleteModel(
                    name="Conversation",
                ),
                migrations.DeleteModel(
                    name="InboundEvent",
                ),
                migrations.DeleteModel(
                    name="Integration",
                ),
                migrations.DeleteModel(
                    name="KnowledgeEntry",
                ),
                migrations.DeleteModel(
                    name="Lead",
                ),
                migrations.DeleteModel(
                    name="Site",
                ),
                migrations.DeleteModel(
                    name="Ticket",
                ),
            ],
            database_operations=[],
        ),
    ]
