"""Site and ApiKey move from the agentbot app to core; their tables keep the names agentbot_site, agentbot_apikey."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import core.ids

# Each moved model's content type changes app, so permissions given to users and groups and the
# admin's history of changes stay attached to it.
MOVED = {
    "core": ("site", "apikey"),
    "domain": ("conversation", "message", "ticket", "lead", "appointment"),
    "inbound": ("integration", "inboundevent", "knowledgeentry"),
}


def content_types_follow(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for app_label, models_ in MOVED.items():
        ContentType.objects.filter(app_label="agentbot", model__in=models_).update(app_label=app_label)


def content_types_return(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for app_label, models_ in MOVED.items():
        ContentType.objects.filter(app_label=app_label, model__in=models_).update(app_label="agentbot")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("agentbot", "0006_inbound_event_unmatched"),
    ]

    operations = [
        # The tables exist already (made by agentbot's migrations, kept with their names): only
        # Django's picture of which app owns them changes. No table is created, altered or copied.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Site",
                    fields=[
                        ("id", models.CharField(default=core.ids.new_site_id, max_length=70, primary_key=True, serialize=False)),
                        ("name", models.CharField(blank=True, max_length=200)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                    ],
                    options={
                        "db_table": "agentbot_site",
                        "ordering": ["created_at"],
                    },
                ),
                migrations.CreateModel(
                    name="ApiKey",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(blank=True, max_length=200)),
                        (
                            "prefix",
                            models.CharField(
                                editable=False, help_text="The key's first characters, to tell keys apart.", max_length=16
                            ),
                        ),
                        ("key_hash", models.CharField(editable=False, max_length=64, unique=True)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ("last_used_at", models.DateTimeField(blank=True, editable=False, null=True)),
                        ("revoked_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "site",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="api_keys", to="core.site"
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "API key",
                        "db_table": "agentbot_apikey",
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_follow, content_types_return, elidable=False),
    ]
