"""subscriptions 0008: webhooks get `ordering`, none; an integration's reply webhook becomes
ordered by key (its replies carry the conversation's id), so a channel gets them in turn."""

import pytest
from django.db import connection

from tests.support.migrations import migrate, migrate_latest

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("subscriptions", "0007_broker_destination")
AFTER = ("subscriptions", "0008_webhook_ordering")


def test_reply_webhooks_are_ordered_by_key_and_subscribers_keep_theirs_unordered(site):
    migrate(BEFORE)
    try:
        with connection.cursor() as cursor:
            for webhook_id, connector in (("wh_sub", ""), ("wh_reply", "chat2desk")):
                cursor.execute(
                    "INSERT INTO subscriptions_webhook (id, site_id, url, events, format, enabled, description, secret,"
                    " previous_secret, disabled_reason, consecutive_failures, connector, exchange, routing_key,"
                    " broker_password, created_at, updated_at)"
                    " VALUES (%s, %s, 'https://example.com/h', '[\"*\"]', 'agentbot', true, '', 'x', '', '', 0, %s,"
                    " '', '', '', now(), now())",
                    [webhook_id, site.id, connector],
                )
        migrate(AFTER)
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, ordering FROM subscriptions_webhook ORDER BY id")
            assert cursor.fetchall() == [("wh_reply", "key"), ("wh_sub", "none")]
    finally:
        migrate_latest()
