"""Publishing to RabbitMQ (deliveries/engine/amqp.py) against the real test broker: what a confirm, a
return, a nack, a closed channel, a wrong password and the URL policy each make of an attempt."""

import asyncio
import json

import pytest
from yarl import URL

from deliveries.engine import amqp, http
from deliveries.engine.engine import Job
from subscriptions.url_policy import broker_url_masked
from tests.support.rabbitmq import WEBHOOK_URL, BrokerQueue

STORED_URL, PASSWORD = broker_url_masked(WEBHOOK_URL)


@pytest.fixture(scope="module", autouse=True)
def _pool_closed_after_the_module():
    yield
    amqp.pool_stop()


@pytest.fixture
def broker_queue():
    queue = BrokerQueue(binding_key="message.created", exchange_type="direct")
    yield queue
    queue.close()


def message(queue: BrokerQueue, **changes) -> amqp.BrokerMessage:
    fields = dict(
        url=STORED_URL,
        password=PASSWORD,
        exchange=queue.exchange,
        routing_key="message.created",
        body=b'{"event":"message.created"}',
        headers={"Content-Type": "application/json", "X-Agentbot-Event": "message.created"},
        message_id="dlv_test1",
        type="message.created",
        channel_owner="wh_test1",
        timeout=5,
    )
    return amqp.BrokerMessage(**{**fields, **changes})


def publish(msg: amqp.BrokerMessage) -> http.OutboundResult:
    return http.client().run(amqp.publish(msg))


def test_a_confirmed_publish_succeeds_and_arrives_persistent_with_its_headers(broker_queue):
    result = publish(message(broker_queue))
    assert result.confirmed and result.error == ""
    assert result.body.decode().startswith("confirmed by the broker")
    (got,) = broker_queue.get(1)
    assert got.body == b'{"event":"message.created"}'
    assert got.headers == {"X-Agentbot-Event": "message.created"}  # Content-Type is the property
    assert (got.content_type, got.delivery_mode, got.message_id, got.type) == (
        "application/json",
        2,
        "dlv_test1",
        "message.created",
    )
    assert got.properties["app_id"] == "agentbot-webhooks"


def test_an_unroutable_routing_key_is_a_failure_that_says_no_route(broker_queue):
    result = publish(message(broker_queue, routing_key="ticket.created"))
    assert not result.confirmed
    assert "unroutable (NO_ROUTE, 312)" in result.error
    assert f"exchange={broker_queue.exchange!r} routing key='ticket.created'" in result.error
    assert broker_queue.drain(0.5) == []


def test_a_nack_is_a_failure():
    # A queue that refuses what does not fit: the broker nacks the second message.
    queue = BrokerQueue(
        binding_key="k", exchange_type="direct", queue_arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    try:
        assert publish(message(queue, routing_key="k")).confirmed
        result = publish(message(queue, routing_key="k", message_id="dlv_test2"))
        assert not result.confirmed
        assert result.error.startswith("nack: the broker refused the message")
    finally:
        queue.close()


def test_a_missing_exchange_fails_that_attempt_and_the_next_publish_gets_a_new_channel(broker_queue):
    result = publish(message(broker_queue, exchange="agentbot-no-such-exchange"))
    assert not result.confirmed
    assert result.error == "channel closed by the broker: NOT_FOUND - no exchange 'agentbot-no-such-exchange' in vhost '/'"
    assert publish(message(broker_queue)).confirmed


def test_one_webhooks_channel_error_leaves_anothers_channel_open(broker_queue):
    assert publish(message(broker_queue, channel_owner="wh_other")).confirmed
    pool = amqp.pool()
    other = [ch for (key, owner), ch in pool.channels.items() if owner == "wh_other"]
    publish(message(broker_queue, exchange="agentbot-no-such-exchange"))
    assert other and not other[0].is_closed
    assert publish(message(broker_queue, channel_owner="wh_other")).confirmed


def test_publishes_share_one_connection_per_broker_account(broker_queue):
    publish(message(broker_queue))
    publish(message(broker_queue, channel_owner="wh_test2"))
    keys = [key for key in amqp.pool().connections if key[:2] == ("127.0.0.1", 5672) and key[3] == "guest"]
    assert len(keys) == 1
    assert PASSWORD not in keys[0][4:]  # the password only as a digest


def test_a_wrong_password_is_a_failure_that_does_not_show_the_password(broker_queue):
    result = publish(message(broker_queue, password="Wr0ng-s3cret-pass"))
    assert not result.confirmed
    assert result.error.startswith("authentication failed")
    assert "Wr0ng-s3cret-pass" not in result.error


def test_a_broker_that_is_not_listening_is_a_connection_failure(broker_queue, closed_port):
    result = publish(message(broker_queue, url=f"amqp://guest:****@127.0.0.1:{closed_port}/"))
    assert result.error == f"connection failed: Connection refused (127.0.0.1:{closed_port})"


def test_the_url_policy_refuses_a_private_broker_when_connecting(broker_queue, settings):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    result = publish(message(broker_queue))
    assert not result.confirmed
    assert result.error.startswith("refused: the URL's host is a non-public address (127.0.0.1 is in 127.0.0.0/8, loopback")
    assert broker_queue.drain(0.3) == []


def test_a_library_error_that_names_the_password_is_scrubbed():
    assert amqp.scrub("login p@ss:word failed (p%40ss%3Aword)", "p@ss:word") == "login **** failed (****)"


@pytest.mark.parametrize("password", ["a", "e", "x:y", "/"])
def test_a_short_password_is_masked_only_as_a_urls_password_never_as_ordinary_characters(password):
    from urllib.parse import quote

    text = f"cannot connect to amqp://agent:{quote(password, safe='')}@broker.example:5672/ (a reason, and more text)"
    scrubbed = amqp.scrub(text, password)
    assert scrubbed == "cannot connect to amqp://agent:****@broker.example:5672/ (a reason, and more text)"
    assert amqp.scrub(f"amqp://agent:{password}@h/", password) == "amqp://agent:****@h/"


def test_a_job_publishes_with_the_event_type_as_routing_key_unless_the_webhook_names_one():
    job = Job(
        delivery_id="dlv_1",
        token="t",
        webhook_id="wh_1",
        event_id="evt_1",
        url=STORED_URL,
        format="agentbot",
        event_type="message.created",
        body=json.dumps({"a": 1}).encode(),
        secrets=["whsec_x"],
        attempt_count=0,
        schedule_position=0,
        exchange="ex",
        broker_password="s3cret-pw",
    )
    job.sign()
    msg = job.broker_message()
    assert job.is_broker and msg.routing_key == "message.created" and msg.message_id == "dlv_1"
    assert msg.headers["X-Agentbot-Delivery-Id"] == "dlv_1" and msg.headers["X-Agentbot-Signature"].startswith("t=")
    assert msg.password == "s3cret-pw" and "s3cret-pw" not in repr(msg) + repr(job)
    job.routing_key = "crm.events"
    assert job.broker_message().routing_key == "crm.events"


def test_amqps_connects_with_tls_to_the_checked_address_and_checks_the_host_name(broker_queue):
    # The test broker speaks plain AMQP only: the TLS handshake is tried, and fails as a connection failure.
    result = publish(message(broker_queue, url="amqps://guest:****@127.0.0.1:5672/"))
    assert not result.confirmed and result.error.startswith("connection failed:"), result.error
    loop = asyncio.new_event_loop()
    try:
        connection = amqp._Connection(URL("amqps://u:p@203.0.113.7:5671/"), loop=loop, server_hostname="rabbit.example.com")
        assert connection.kwargs["server_hostname"] == "rabbit.example.com"
    finally:
        loop.close()
