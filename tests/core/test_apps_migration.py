"""A database made and filled by the migrations main had before core, domain and inbound became
apps migrates to the new layout with every row kept, and the service delivers from it.

The old layout is reached by unapplying the moves (core 0001 and everything after it): what is
left is exactly the schema main's migrations built, and the rows are written through that
schema's historical models, as the old code wrote them.
"""

import hashlib
import hmac

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from core.models import ApiKey, Site
from deliveries.models import Delivery, Event
from domain.models import Conversation, Lead, Message, Ticket
from inbound.models import InboundEvent, Integration, KnowledgeEntry
from subscriptions.models import Webhook
from tests.deliveries.test_end_to_end import wait_for_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

OLD_LAYOUT = [("core", None)]  # unapplying core 0001 unapplies every migration of the move
OLD_LEAVES = [
    ("agentbot", "0006_inbound_event_unmatched"),
    ("subscriptions", "0004_webhook_channel_format"),
    ("deliveries", "0003_event_data_as_json_text"),
]
MOVED_TABLES = [
    "agentbot_site", "agentbot_apikey", "agentbot_conversation", "agentbot_message", "agentbot_ticket",
    "agentbot_lead", "agentbot_appointment", "agentbot_integration", "agentbot_inboundevent", "agentbot_knowledgeentry",
]  # fmt: skip


def executor() -> MigrationExecutor:
    found = MigrationExecutor(connection)
    found.loader.build_graph()
    return found


def migrate(targets) -> None:
    executor().migrate(targets)


def migrate_to_latest() -> None:
    e = executor()
    e.migrate(e.loader.graph.leaf_nodes())


def table_rows() -> dict[str, int]:
    with connection.cursor() as cursor:
        counts = {}
        for table in MOVED_TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (names from the list above)
            counts[table] = cursor.fetchone()[0]
        return counts


def fill_the_old_layout(receiver_url: str) -> dict:
    """Rows of every moved model, written through the old schema's models; a webhook with one
    delivery due, and a user holding a permission on a moved model."""
    old = executor().loader.project_state(OLD_LEAVES).apps
    site = old.get_model("agentbot", "Site").objects.create(id="site_oldmain", name="Before the move")
    old.get_model("agentbot", "ApiKey").objects.create(site=site, prefix="abk_old", key_hash=hashlib.sha256(b"k").hexdigest())
    integration = old.get_model("agentbot", "Integration").objects.create(
        id="intg_old", site=site, connector_type="chat2desk", name="Chat2Desk", api_token="token-kept"
    )
    conversation = old.get_model("agentbot", "Conversation").objects.create(
        id="conv_old", site=site, number=1, channel="telegram", integration=integration, external_id="client-7"
    )
    old.get_model("agentbot", "Message").objects.create(id="msg_old", conversation=conversation, sender_type="visitor", body="Hi")
    old.get_model("agentbot", "Ticket").objects.create(id="tkt_old", site=site, conversation=conversation, subject="Refund")
    old.get_model("agentbot", "Lead").objects.create(id="lead_old", site=site, conversation=conversation, email="a@example.com")
    old.get_model("agentbot", "Appointment").objects.create(id="apt_old", site=site, conversation=conversation, phone="+100")
    old.get_model("agentbot", "InboundEvent").objects.create(
        id="inb_old", integration=integration, conversation=conversation, kind="message", status="done", payload={"text": "Hi"}
    )
    old.get_model("agentbot", "KnowledgeEntry").objects.create(id="kb_old", site=site, question="Hours?", answer="9 to 5")
    webhook = old.get_model("subscriptions", "Webhook").objects.create(
        id="wh_old", site=site, url=receiver_url, events=["message.created"], secret="whsec-old-main"
    )
    with connection.cursor() as cursor:  # the event's data column holds JSON text (deliveries 0003)
        cursor.execute(
            "INSERT INTO deliveries_event (id, site_id, type, data, created_at) VALUES ('evt_old', %s, 'message.created', %s, now())",
            [site.id, '{"conversation_id":"conv_old","message_id":"msg_old","sender_type":"visitor","body":"Hi"}'],
        )
    old.get_model("deliveries", "Delivery").objects.create(
        id="dlv_old", event_id="evt_old", webhook=webhook, status="pending", next_attempt_at=timezone.now()
    )
    # A content type and permission made as `migrate` made them for the old app.
    content_type, _ = ContentType.objects.get_or_create(app_label="agentbot", model="conversation")
    permission, _ = Permission.objects.get_or_create(
        codename="view_conversation", content_type=content_type, defaults={"name": "x"}
    )
    user = User.objects.create_user("auditor")
    user.user_permissions.add(permission)
    return {"content_type": content_type.pk}


def test_a_database_of_the_old_layout_migrates_with_every_row_kept_and_delivers(receiver, workers):
    migrate(OLD_LAYOUT)
    try:
        before = fill_the_old_layout(receiver.url)
        rows_before = table_rows()
        migrate_to_latest()
    finally:
        migrate_to_latest()

    assert table_rows() == rows_before and all(rows_before.values())
    assert Site.objects.get().name == "Before the move"
    assert ApiKey.objects.get().prefix == "abk_old"
    assert Integration.objects.get().api_token == "token-kept"  # still decrypts
    conversation = Conversation.objects.get()
    assert (conversation.integration_id, conversation.external_id) == ("intg_old", "client-7")
    assert Message.objects.get().conversation == conversation and Ticket.objects.get().subject == "Refund"
    assert Lead.objects.get().email == "a@example.com"
    assert InboundEvent.objects.get().conversation == conversation and KnowledgeEntry.objects.get().answer == "9 to 5"
    assert Event.objects.get().data["body"] == "Hi"
    # The permission stays attached: the content type changed app, it was not made anew.
    moved = ContentType.objects.get(pk=before["content_type"])
    assert (moved.app_label, moved.model) == ("domain", "conversation")
    assert User.objects.get(username="auditor").has_perm("domain.view_conversation")

    webhook = Webhook.objects.get()
    assert webhook.secret == "whsec-old-main"
    workers.start()
    (request,) = receiver.wait_for(1)
    assert wait_for_status("dlv_old", "succeeded").attempt_count == 1
    assert request.headers["x-agentbot-delivery-id"] == "dlv_old"
    fields = dict(part.split("=", 1) for part in request.headers["x-agentbot-signature"].split(","))
    expected = hmac.new(b"whsec-old-main", fields["t"].encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)
    assert Delivery.objects.get().status == "succeeded"
