"""The webhook channel's JWE key pair: a column for its private key (encrypted at rest), and a key
for each instance made before it."""

from django.db import migrations

import core.crypto


def keys_generate(apps, schema_editor):
    from inbound.models import generate_jwe_private_key

    Integration = apps.get_model("inbound", "Integration")
    for integration in Integration.objects.filter(connector_type="webhook", jwe_private_key=""):
        integration.jwe_private_key = generate_jwe_private_key()
        integration.save(update_fields=["jwe_private_key"])


class Migration(migrations.Migration):
    dependencies = [
        ("inbound", "0002_integration_settings"),
    ]

    operations = [
        migrations.AddField(
            model_name="integration",
            name="jwe_private_key",
            field=core.crypto.EncryptedTextField(blank=True, default="", editable=False, verbose_name="JWE private key"),
        ),
        migrations.RunPython(keys_generate, migrations.RunPython.noop),
    ]
