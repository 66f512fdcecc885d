"""The connectors' registry (inbound/connectors/): every connector type has one, each reply format
is a delivery format in every process that loads Django, and a person's reply reaches the
connector through domain/hooks.py inside the transaction that stored it."""

import subprocess
import sys

import pytest
from django.db import transaction

from deliveries.formats import FORMATS, get_format
from domain import services as domain
from domain.hooks import person_reply_hooks
from domain.models import Conversation, Message
from inbound import integrations
from inbound.connectors import CONNECTORS, connector_of
from inbound.connectors.chat2desk.reply import REPLY_FORMAT as CHAT2DESK_REPLY
from inbound.connectors.webhook_channel.reply import REPLY_FORMAT as WEBHOOK_CHANNEL_REPLY
from inbound.connectors.webhook_channel.services import UNRETURNED
from inbound.models import CONNECTOR_SETTINGS, ConnectorType, Integration
from inbound.services import person_reply_relay
from subscriptions.models import WebhookFormat


def test_every_connector_type_has_its_connector():
    assert set(CONNECTORS) == set(ConnectorType.values)
    assert all(connector_of(name).type == name for name in ConnectorType.values)


def test_the_connectors_reply_formats_are_delivery_formats():
    assert get_format(WebhookFormat.CHAT2DESK) is CHAT2DESK_REPLY
    assert get_format(WebhookFormat.WEBHOOK_CHANNEL) is WEBHOOK_CHANNEL_REPLY
    assert connector_of(ConnectorType.WEBCHAT).reply_format is None, "a webchat's replies go back over its socket"


def test_a_process_that_loads_django_knows_the_reply_formats():
    # What a Celery worker or the delivery engine does at start: django.setup() runs inbound's ready().
    code = "import django; django.setup(); from deliveries.formats import FORMATS; print(' '.join(sorted(FORMATS)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert set(done.stdout.split()) == set(FORMATS) >= {WebhookFormat.CHAT2DESK, WebhookFormat.WEBHOOK_CHANNEL}


def test_the_person_reply_relay_is_registered_once():
    assert person_reply_hooks.count(person_reply_relay) == 1


@pytest.mark.django_db(transaction=True)
def test_a_persons_reply_is_relayed_in_the_transaction_that_stores_it(site):
    instance = integrations.integration_create(site=site, connector_type="webhook", name="IVR")
    conversation = domain.conversation_create(site=site, channel="other", integration=instance, external_id="caller-1")

    with pytest.raises(RuntimeError), transaction.atomic():
        domain.message_create(conversation=conversation, sender_type="agent", body="rolled back")
        assert UNRETURNED in Conversation.objects.get(pk=conversation.pk).context, "relayed before the commit"
        raise RuntimeError("the caller's transaction fails after the message")
    assert UNRETURNED not in Conversation.objects.get(pk=conversation.pk).context
    assert not Message.objects.filter(conversation=conversation).exists()

    kept = domain.message_create(conversation=conversation, sender_type="agent", body="kept")
    assert Conversation.objects.get(pk=conversation.pk).context[UNRETURNED] == [kept.id]


@pytest.mark.django_db
def test_a_new_integrations_settings_are_its_connectors(site):
    chat = integrations.integration_create(site=site, connector_type="webchat", allowed_origins="https://shop.example")
    assert chat.settings == {"allowed_origins": "https://shop.example"}
    instance = integrations.integration_create(
        site=site, connector_type="webhook", mode="async", post_url="https://receiver.example/post"
    )
    assert set(instance.settings) == set(CONNECTOR_SETTINGS[ConnectorType.WEBHOOK])
    assert (instance.mode, instance.api_version, instance.client_id.startswith("cs-")) == ("async", "v2", True)
    assert instance.client_secret, "a credential: an encrypted column, not a setting"
    assert "client_secret" not in instance.settings
    assert Integration.objects.filter(settings__mode="async").get() == instance
