"""subscriptions 0007: webhooks get a broker destination's fields; every row stays as it was."""

import pytest
from django.db import connection

from tests.support.migrations import migrate, migrate_latest

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("subscriptions", "0006_chat_formats")
AFTER = ("subscriptions", "0007_broker_destination")


def test_existing_webhooks_keep_their_rows_and_get_empty_broker_fields(site):
    migrate(BEFORE)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO subscriptions_webhook (id, site_id, url, events, format, enabled, description, secret,"
                " previous_secret, disabled_reason, consecutive_failures, connector, created_at, updated_at)"
                " VALUES ('wh_old', %s, 'https://crm.example.com/hooks', '[\"*\"]', 'agentbot', true, 'kept', 'x', '',"
                " '', 3, '', now(), now())",
                [site.id],
            )
        migrate(AFTER)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT url, description, consecutive_failures, exchange, routing_key, broker_password"
                " FROM subscriptions_webhook WHERE id = 'wh_old'"
            )
            assert cursor.fetchone() == ("https://crm.example.com/hooks", "kept", 3, "", "", "")
    finally:
        migrate_latest()
