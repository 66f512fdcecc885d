"""Integrations, inbound events and the knowledge base move from the agentbot app to inbound, tables unchanged."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import core.crypto
import core.ids
import inbound.models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("core", "0001_initial"),
        ("domain", "0001_initial"),
        ("subscriptions", "0004_webhook_channel_format"),
    ]

    operations = [
        # The tables exist already (made by agentbot's migrations, kept with their names): only
        # Django's picture of which app owns them changes. No table is created, altered or copied.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Integration",
                    fields=[
                        (
                            "id",
                            models.CharField(
                                default=core.ids.new_integration_id,
                                editable=False,
                                max_length=40,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        (
                            "connector_type",
                            models.CharField(
                                choices=[("chat2desk", "Chat2Desk"), ("webchat", "Webchat"), ("webhook", "Webhook channel")],
                                default="chat2desk",
                                max_length=20,
                            ),
                        ),
                        ("name", models.CharField(blank=True, max_length=200)),
                        (
                            "active",
                            models.BooleanField(default=True, help_text="An inactive integration answers its webhook with 403."),
                        ),
                        (
                            "webhook_secret",
                            core.crypto.EncryptedTextField(default=inbound.models.generate_inbound_secret, editable=False),
                        ),
                        (
                            "api_url",
                            models.URLField(
                                blank=True,
                                help_text="Chat2Desk's API for your account's instance (global or Europe), as in https://api.chat2desk.com",
                                max_length=500,
                                verbose_name="API URL",
                            ),
                        ),
                        (
                            "api_token",
                            core.crypto.EncryptedTextField(blank=True, default="", editable=False, verbose_name="API token"),
                        ),
                        ("remote_webhook_id", models.CharField(blank=True, editable=False, max_length=100)),
                        ("webhook_registered_at", models.DateTimeField(blank=True, editable=False, null=True)),
                        (
                            "allowed_origins",
                            models.TextField(
                                blank=True,
                                help_text="Webchat: the origins whose pages may open the widget, one per line (https://shop.example).",
                            ),
                        ),
                        (
                            "api_version",
                            models.CharField(
                                choices=[("v1", "v1"), ("v2", "v2")], default="v2", max_length=2, verbose_name="API version"
                            ),
                        ),
                        (
                            "mode",
                            models.CharField(
                                choices=[
                                    ("sync", "synchronous: the answer is in the response"),
                                    ("async", "asynchronous: answers are posted to the POST_URL"),
                                ],
                                default="sync",
                                max_length=5,
                                verbose_name="mode",
                            ),
                        ),
                        (
                            "post_url",
                            models.URLField(
                                blank=True,
                                help_text="Webhook channel, asynchronous mode: where each of the agent's messages is posted.",
                                max_length=2048,
                                verbose_name="POST_URL",
                            ),
                        ),
                        (
                            "polling",
                            models.BooleanField(
                                default=True,
                                help_text="Webhook channel v2, synchronous mode: answer with a pollId when the agent is not done.",
                                verbose_name="polling",
                            ),
                        ),
                        (
                            "jwt_algorithm",
                            models.CharField(
                                choices=[("HS256", "HS256"), ("HS512", "HS512"), ("RS256", "RS256"), ("RS512", "RS512")],
                                default="HS256",
                                max_length=5,
                                verbose_name="JWT signing algorithm",
                            ),
                        ),
                        ("client_id", models.CharField(blank=True, editable=False, max_length=100, verbose_name="client id")),
                        ("client_secret", core.crypto.EncryptedTextField(blank=True, default="", editable=False)),
                        (
                            "public_key",
                            models.TextField(
                                blank=True, help_text="RS256/RS512: the client's public key, PEM.", verbose_name="public key"
                            ),
                        ),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "reply_webhook",
                            models.OneToOneField(
                                blank=True,
                                editable=False,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="integration",
                                to="subscriptions.webhook",
                            ),
                        ),
                        (
                            "site",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="integrations", to="core.site"
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "integration",
                        "verbose_name_plural": "integrations",
                        "db_table": "agentbot_integration",
                        "ordering": ["-created_at"],
                    },
                ),
                migrations.CreateModel(
                    name="KnowledgeEntry",
                    fields=[
                        (
                            "id",
                            models.CharField(
                                default=core.ids.new_knowledge_id,
                                editable=False,
                                max_length=40,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        ("question", models.CharField(max_length=500)),
                        ("answer", models.TextField()),
                        (
                            "keywords",
                            models.CharField(
                                blank=True,
                                help_text="More words that should lead to this answer, separated by commas.",
                                max_length=500,
                            ),
                        ),
                        ("enabled", models.BooleanField(default=True)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "site",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="knowledge", to="core.site"
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "knowledge base entry",
                        "verbose_name_plural": "knowledge base",
                        "db_table": "agentbot_knowledgeentry",
                        "ordering": ["question"],
                    },
                ),
                migrations.CreateModel(
                    name="InboundEvent",
                    fields=[
                        (
                            "id",
                            models.CharField(
                                default=core.ids.new_inbound_id, editable=False, max_length=40, primary_key=True, serialize=False
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[("message", "Message"), ("status", "Status"), ("other", "Other")], max_length=10
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("received", "Received"),
                                    ("accepted", "Accepted"),
                                    ("processed", "Processed"),
                                    ("ignored", "Ignored"),
                                    ("unmatched", "Unmatched"),
                                    ("failed", "Failed"),
                                ],
                                default="received",
                                max_length=10,
                            ),
                        ),
                        ("payload", models.JSONField(help_text="The normalised payload.")),
                        ("external_id", models.CharField(blank=True, max_length=200)),
                        ("outcome", models.TextField(blank=True, help_text="What processing did, or why it failed.")),
                        ("replies", models.JSONField(blank=True, default=list, editable=False)),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("next_attempt_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("received_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ("processed_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "conversation",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="inbound_events",
                                to="domain.conversation",
                            ),
                        ),
                        (
                            "integration",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="inbound_events",
                                to="inbound.integration",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "inbound event",
                        "verbose_name_plural": "inbound events",
                        "db_table": "agentbot_inboundevent",
                        "ordering": ["-received_at"],
                        "indexes": [
                            models.Index(
                                condition=models.Q(("status__in", ["received", "accepted"])),
                                fields=["next_attempt_at"],
                                name="inbound_event_pending_idx",
                            ),
                            models.Index(fields=["integration", "-received_at"], name="inbound_event_recent_idx"),
                            models.Index(fields=["received_at"], name="inbound_event_age_idx"),
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                condition=models.Q(("external_id", ""), _negated=True),
                                fields=("integration", "external_id"),
                                name="inbound_event_once_per_external_id",
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
