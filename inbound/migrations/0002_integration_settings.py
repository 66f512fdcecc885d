"""Each connector's settings of an integration move from columns of their own to its `settings`
(JSON), every row's values kept; the credentials (webhook secret, API token, client secret) stay
encrypted columns. Reversible: the columns come back with the values `settings` held."""

from datetime import datetime

from django.db import migrations, models

# The settings that were columns, with the columns' defaults (inbound.models.SETTING_DEFAULTS then).
MOVED = {
    "api_url": "",
    "remote_webhook_id": "",
    "webhook_registered_at": None,
    "allowed_origins": "",
    "api_version": "v2",
    "mode": "sync",
    "post_url": "",
    "polling": True,
    "jwt_algorithm": "HS256",
    "client_id": "",
    "public_key": "",
}


# Which settings each connector has (inbound.models.CONNECTOR_SETTINGS then).
CONNECTOR_SETTINGS = {
    "chat2desk": ("api_url", "remote_webhook_id", "webhook_registered_at"),
    "webchat": ("allowed_origins",),
    "webhook": ("api_version", "mode", "post_url", "polling", "jwt_algorithm", "client_id", "public_key"),
}


def columns_to_settings(apps, schema_editor):
    Integration = apps.get_model("inbound", "Integration")
    for integration in Integration.objects.all().iterator():
        found = {name: getattr(integration, name) for name in MOVED}
        if found["webhook_registered_at"] is not None:
            found["webhook_registered_at"] = found["webhook_registered_at"].isoformat()
        # Every setting of its connector (as integration_create stores them), and another
        # connector's only where it differs from the default: no value is lost.
        own = CONNECTOR_SETTINGS.get(integration.connector_type, ())
        integration.settings = {name: value for name, value in found.items() if name in own or value != MOVED[name]}
        integration.save(update_fields=["settings"])


def settings_to_columns(apps, schema_editor):
    Integration = apps.get_model("inbound", "Integration")
    for integration in Integration.objects.all().iterator():
        for name, default in MOVED.items():
            value = integration.settings.get(name, default)
            if name == "webhook_registered_at" and value is not None:
                value = datetime.fromisoformat(value)
            setattr(integration, name, value)
        integration.save(update_fields=list(MOVED))


class Migration(migrations.Migration):
    dependencies = [("inbound", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="integration",
            name="settings",
            field=models.JSONField(
                blank=True, default=dict, help_text="The connector's settings (inbound.models.CONNECTOR_SETTINGS)."
            ),
        ),
        migrations.RunPython(columns_to_settings, settings_to_columns),
        *[migrations.RemoveField(model_name="integration", name=name) for name in MOVED],
    ]
