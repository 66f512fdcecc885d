"""inbound 0002: the connectors' settings move from columns of their own to `Integration.settings`
with every row's values kept, and back again when the migration is unapplied.

The rows are written through the historical model of inbound 0001 (the columns), as the code
before the move wrote them; what the migration made of them is read through today's model."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from core.models import Site
from inbound.models import Integration

pytestmark = [pytest.mark.django_db(transaction=True)]

BEFORE = [("inbound", "0001_initial")]
AFTER = [("inbound", "0002_integration_settings")]
REGISTERED = datetime(2026, 5, 21, 17, 45, 12, tzinfo=UTC)
PEM = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"


def migrate(targets):
    """Migrate to `targets`; the historical apps of that state."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def latest() -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def fill_the_columns(old) -> None:
    site = Site.objects.create(id="site_settings", name="Before the settings moved")
    Old = old.get_model("inbound", "Integration")
    Old.objects.create(
        id="intg_c2d", site_id=site.id, connector_type="chat2desk", api_url="https://api.chat2desk.com", api_token="token-kept",
        remote_webhook_id="77", webhook_registered_at=REGISTERED,
    )  # fmt: skip
    Old.objects.create(id="intg_chat", site_id=site.id, connector_type="webchat", allowed_origins="https://shop.example")
    Old.objects.create(
        id="intg_hook", site_id=site.id, connector_type="webhook", api_version="v1", mode="async",
        post_url="https://receiver.example/post", polling=False, jwt_algorithm="RS256", client_id="cs-1",
        client_secret="client-secret-kept", public_key=PEM,
    )  # fmt: skip
    # Another connector's column set (the API refuses it today; an old row may have it): kept too.
    Old.objects.create(id="intg_odd", site_id=site.id, connector_type="webchat", api_url="https://api.chat2desk.eu")


def test_the_settings_move_with_every_value_and_back():
    try:
        fill_the_columns(migrate(BEFORE))
        migrate(AFTER)
        kept = Integration.objects.defer("jwe_private_key")  # a column a later migration adds

        chat2desk = kept.get(pk="intg_c2d")
        assert chat2desk.settings == {
            "api_url": "https://api.chat2desk.com", "remote_webhook_id": "77", "webhook_registered_at": REGISTERED.isoformat(),
        }  # fmt: skip
        assert chat2desk.webhook_registered_at == REGISTERED and chat2desk.api_token == "token-kept"
        assert kept.get(pk="intg_chat").settings == {"allowed_origins": "https://shop.example"}
        hook = kept.get(pk="intg_hook")
        assert hook.settings == {
            "api_version": "v1", "mode": "async", "post_url": "https://receiver.example/post", "polling": False,
            "jwt_algorithm": "RS256", "client_id": "cs-1", "public_key": PEM,
        }  # fmt: skip
        assert (hook.mode, hook.polling, hook.client_secret) == ("async", False, "client-secret-kept")
        odd = kept.get(pk="intg_odd")
        assert odd.settings == {"allowed_origins": "", "api_url": "https://api.chat2desk.eu"}
        assert kept.filter(settings__api_version="v1").get() == hook, "settings can be queried"

        latest()
        keys = dict(Integration.objects.values_list("id", "jwe_private_key"))
        assert keys["intg_hook"].startswith("-----BEGIN PRIVATE KEY-----"), "inbound 0003 gives each instance a JWE key"
        assert keys["intg_c2d"] == "" and "BEGIN PUBLIC KEY" in Integration.objects.get(pk="intg_hook").jwe_public_key

        old = migrate(BEFORE).get_model("inbound", "Integration")
        back = old.objects.get(pk="intg_hook")
        assert (back.api_version, back.mode, back.post_url, back.polling, back.jwt_algorithm, back.client_id, back.public_key) == (
            "v1", "async", "https://receiver.example/post", False, "RS256", "cs-1", PEM,
        )  # fmt: skip
        assert old.objects.get(pk="intg_c2d").webhook_registered_at == REGISTERED
        assert old.objects.get(pk="intg_odd").api_url == "https://api.chat2desk.eu"
    finally:
        latest()
