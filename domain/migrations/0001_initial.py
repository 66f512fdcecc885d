"""The agent's records move from the agentbot app to domain, tables unchanged (agentbot_conversation, …)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import core.ids


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("core", "0001_initial"),
    ]

    operations = [
        # The tables exist already (made by agentbot's migrations, kept with their names): only
        # Django's picture of which app owns them changes. No table is created, altered or copied.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Conversation",
                    fields=[
                        (
                            "id",
                            models.CharField(
                                default=core.ids.new_conversation_id,
                                editable=False,
                                max_length=40,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        ("number", models.PositiveIntegerField(editable=False)),
                        (
                            "channel",
                            models.CharField(
                                choices=[
                                    ("whatsapp", "whatsapp"),
                                    ("telegram", "telegram"),
                                    ("facebook", "facebook"),
                                    ("instagram", "instagram"),
                                    ("email", "email"),
                                    ("web", "web"),
                                    ("viber", "viber"),
                                    ("vk", "vk"),
                                    ("sms", "sms"),
                                    ("other", "other"),
                                ],
                                max_length=20,
                            ),
                        ),
                        (
                            "status",
                            models.CharField(choices=[("open", "open"), ("closed", "closed")], default="open", max_length=10),
                        ),
                        ("visitor_name", models.CharField(blank=True, max_length=200)),
                        ("visitor_email", models.EmailField(blank=True, max_length=254)),
                        ("visitor_phone", models.CharField(blank=True, max_length=40)),
                        ("page_url", models.CharField(blank=True, max_length=2048)),
                        (
                            "source",
                            models.JSONField(blank=True, default=dict, help_text="The channel's identifiers of the visitor."),
                        ),
                        ("needs_human_at", models.DateTimeField(blank=True, null=True)),
                        ("handoff_reason", models.TextField(blank=True)),
                        (
                            "session",
                            models.CharField(
                                choices=[("active", "active"), ("paused", "paused"), ("closed", "closed")],
                                default="active",
                                max_length=10,
                            ),
                        ),
                        (
                            "external_id",
                            models.CharField(blank=True, help_text="The visitor's id at the integration.", max_length=200),
                        ),
                        (
                            "context",
                            models.JSONField(
                                blank=True,
                                default=dict,
                                help_text="Shared conversation context: the channel's addressing, transfers.",
                            ),
                        ),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ("closed_at", models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        "db_table": "agentbot_conversation",
                        "ordering": ["-created_at"],
                    },
                ),
                migrations.CreateModel(
                    name="Lead",
                    fields=[
                        ("first_name", models.CharField(blank=True, max_length=200)),
                        ("last_name", models.CharField(blank=True, max_length=200)),
                        ("email", models.EmailField(blank=True, max_length=254)),
                        ("phone", models.CharField(blank=True, max_length=40)),
                        ("content", models.TextField(blank=True, help_text="Remarks, or what the appointment is about.")),
                        ("uri", models.CharField(blank=True, help_text="Where the visitor submitted it.", max_length=2048)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        (
                            "id",
                            models.CharField(
                                default=core.ids.new_lead_id, editable=False, max_length=40, primary_key=True, serialize=False
                            ),
                        ),
                    ],
                    options={
                        "db_table": "agentbot_lead",
                        "ordering": ["-created_at"],
                        "abstract": False,
                    },
                ),
                migrations.CreateModel(
                    name="Message",
                    fields=[
                        (
                            "id",
                            models.CharField(
                                default=core.ids.new_message_id, editable=False, max_length=40, primary_key=True, serialize=False
                            ),
                        ),
                        (
                            "sender_type",
                            models.CharField(choices=[("visitor", "visitor"), ("agent", "agent"), ("ai", "ai")], max_length=10),
                        ),
                        ("body", models.TextField()),
                        ("metadata", models.JSONField(blank=True, default=dict)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                    ],
                    options={
                        "db_table": "agentbot_message",
                        "ordering": ["conversation", "created_at"],
                    },
                ),
                migrations.CreateModel(
                    name="Ticket",
                    fields=[
                        (
                            "id",
                            models.CharField(
                                default=core.ids.new_ticket_id, editable=False, max_length=40, primary_key=True, serialize=False
                            ),
                        ),
                        ("subject", models.CharField(max_length=300)),
                        (
                            "status",
                            models.CharField(
                                choices=[("open", "open"), ("pending", "pending"), ("solved", "solved"), ("closed", "closed")],
                                default="open",
                                max_length=10,
                            ),
                        ),
                        (
                            "priority",
                            models.CharField(
                                choices=[("low", "low"), ("normal", "normal"), ("high", "high"), ("urgent", "urgent")],
                                default="normal",
                                max_length=10,
                            ),
                        ),
                        ("assignee", models.CharField(blank=True, max_length=200)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        "db_table": "agentbot_ticket",
                        "ordering": ["-created_at"],
                    },
                ),
                migrations.CreateModel(
                    name="Appointment",
                    fields=[
                        ("first_name", models.CharField(blank=True, max_length=200)),
                        ("last_name", models.CharField(blank=True, max_length=200)),
                        ("email", models.EmailField(blank=True, max_length=254)),
                        ("phone", models.CharField(blank=True, max_length=40)),
                        ("content", models.TextField(blank=True, help_text="Remarks, or what the appointment is about.")),
                        ("uri", models.CharField(blank=True, help_text="Where the visitor submitted it.", max_length=2048)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        (
                            "id",
                            models.CharField(
                                default=core.ids.new_appointment_id,
                                editable=False,
                                max_length=40,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        (
                            "site",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="%(class)ss", to="core.site"
                            ),
                        ),
                    ],
                    options={
                        "db_table": "agentbot_appointment",
                        "ordering": ["-created_at"],
                        "abstract": False,
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
