"""Mutual TLS end to end: a local HTTPS receiver that requires a client certificate from a test CA
takes a webhook's deliveries when the webhook presents one, and refuses the handshake when it
does not; the webhook trusts the receiver through its own private CA."""

import ssl

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from deliveries.services.publish import event_publish
from subscriptions.services import webhook_create
from tests.deliveries.test_end_to_end import wait_for_status
from tests.support.receiver import Receiver
from tests.support.tls_certs import TestCA

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ca():
    return TestCA()


@pytest.fixture
def tls_receiver(ca, tmp_path):
    server = ca.issue("127.0.0.1", server=True)
    (tmp_path / "server.pem").write_text(server.cert_pem)
    (tmp_path / "server.key").write_text(server.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=ca.cert_pem)
    receiver = Receiver(tls=context)
    yield receiver
    receiver.close()


def test_a_client_certificate_from_the_ca_is_accepted_and_none_is_refused(site, ca, tls_receiver, workers):
    client = ca.issue("agentbot-client", server=False)
    with_cert = webhook_create(
        site=site,
        url=tls_receiver.url,
        events=["ticket.created"],
        tls_client_cert=client.cert_pem,
        tls_client_key=client.key_pem,
        tls_ca_cert=ca.cert_pem,
    )
    without = webhook_create(site=site, url=tls_receiver.url, events=["ticket.created"], tls_ca_cert=ca.cert_pem)
    with connection.cursor() as cursor:
        cursor.execute("SELECT tls_client_key FROM subscriptions_webhook WHERE id = %s", [with_cert.id])
        assert "PRIVATE KEY" not in cursor.fetchone()[0], "the key is encrypted at rest"
    workers.start(AGENTBOT_RETRY_SCHEDULE="0")
    with transaction.atomic():
        event, _ = event_publish(site=site, event_type="ticket.created", data={"subject": "mTLS"})

    accepted = wait_for_status(event.deliveries.get(webhook=with_cert).id, "succeeded")
    refused = wait_for_status(event.deliveries.get(webhook=without).id, "failed")
    assert accepted.last_status_code == 200 and len(tls_receiver.received) == 1
    assert refused.last_status_code is None and refused.last_error.startswith("connection failed"), refused.last_error


def test_a_certificate_without_its_key_or_not_pem_is_refused_at_save(site, ca):
    client = ca.issue("agentbot-client", server=False)
    with pytest.raises(ValidationError, match="give the client certificate and its key together"):
        webhook_create(site=site, url="https://crm.example.com/h", events=["*"], tls_client_cert=client.cert_pem)
    with pytest.raises(ValidationError, match="PEM text is expected"):
        webhook_create(site=site, url="https://crm.example.com/h", events=["*"], tls_ca_cert="not a certificate")
    other = TestCA().issue("other", server=False)
    with pytest.raises(ValidationError, match="cannot be loaded"):
        webhook_create(
            site=site,
            url="https://crm.example.com/h",
            events=["*"],
            tls_client_cert=client.cert_pem,
            tls_client_key=other.key_pem,
        )
