"""The SSRF table: one address from every special-purpose block of IANA's IPv4 and IPv6 registries
(the tables in subscriptions/url_policy.py), written in every textual form a URL can carry it in,
is refused when a webhook is created (400 naming the problem) and when a request is sent (the
delivery fails with the reason), and nothing reaches a listener.

No test here sends traffic off the machine: every connection the client opens is redirected to a
loopback receiver (`sandbox`), which records what arrives. A refused address must not even get
that far; the public controls prove the sandbox lets through what the policy allows.
"""

import ipaddress
import socket

import aiohappyeyeballs
import pytest
from django.db import transaction

from deliveries.engine import engine, http
from deliveries.models import Delivery
from deliveries.services.publish import event_publish
from deliveries.services.send import deliveries_send
from subscriptions import url_policy
from subscriptions.models import Webhook
from tests.conftest import client_for
from tests.factories import SiteFactory

MESSAGE = {"conversation_id": "conv_1", "message_id": "msg_1", "sender_type": "visitor", "body": "hi"}
TEREDO_SERVER = ipaddress.IPv4Address("65.54.227.120")  # public: the client part decides


def sample(network: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    net = ipaddress.ip_network(network)
    return net.network_address + (1 if net.num_addresses > 2 else 0)


def refused_blocks(table) -> list[str]:
    return [net for net, _, _, reachable in table if reachable is False]


def ipv4_hosts(ip: ipaddress.IPv4Address) -> dict[str, str]:
    """The URL hosts that stand for `ip`: its legacy IPv4 spellings and the IPv6 forms carrying it."""
    a, b, c, d = ip.packed
    value = int(ip)
    hi, lo = value >> 16, value & 0xFFFF
    client = int(ip) ^ 0xFFFFFFFF
    return {
        "dotted": str(ip),
        "integer": str(value),
        "octal": ".".join(f"0{octet:o}" for octet in ip.packed),
        "hex": f"0x{a:x}.{b}.{c}.{d}",
        "short": f"{a}.{(b << 16) | (c << 8) | d}",
        "ipv4-mapped": f"[::ffff:{ip}]",
        "ipv4-translated": f"[::ffff:0:{hi:x}:{lo:x}]",
        "ipv4-compatible": f"[::{hi:x}:{lo:x}]",
        "nat64": f"[64:ff9b::{hi:x}:{lo:x}]",
        "nat64-local": f"[64:ff9b:1::{hi:x}:{lo:x}]",
        "6to4": f"[2002:{hi:x}:{lo:x}::1]",
        "teredo": f"[{ipaddress.IPv6Address((0x20010000 << 96) | (int(TEREDO_SERVER) << 64) | client)}]",
    }


V4_CASES = [
    (block, form, host) for block in refused_blocks(url_policy.IPV4_SPECIAL) for form, host in ipv4_hosts(sample(block)).items()
]
V6_CASES = [(block, "literal", f"[{sample(block)}]") for block in refused_blocks(url_policy.IPV6_SPECIAL)]
CASES = V4_CASES + V6_CASES
PUBLIC = [
    "8.8.8.8",
    "192.0.0.9",
    "[2606:4700:4700::1111]",
    "[::ffff:8.8.8.8]",
    "[64:ff9b::808:808]",
    "[2002:808:808::1]",
    "[2001:1::1]",
    "[2001:0:4136:e378:8000:63bf:f7f7:f7f7]",
]


def test_the_table_covers_every_registry_block_and_every_form():
    assert len(V6_CASES) == len(refused_blocks(url_policy.IPV6_SPECIAL)) >= 15
    assert {form for _, form, _ in V4_CASES} >= {
        "dotted",
        "integer",
        "octal",
        "hex",
        "short",
        "ipv4-mapped",
        "ipv4-translated",
        "nat64",
        "6to4",
        "teredo",
    }
    assert ipv4_hosts(ipaddress.IPv4Address("127.0.0.1"))["teredo"] == "[2001:0:4136:e378::80ff:fffe]"


@pytest.mark.parametrize("address", [str(sample(b)) for b in refused_blocks(url_policy.IPV4_SPECIAL + url_policy.IPV6_SPECIAL)])
def test_every_refused_block_of_the_registries_is_not_public(address):
    assert url_policy.refusal_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address, reason",
    [
        ("::ffff:0:7f00:1", "IPv4-translated"),
        ("64:ff9b:1::a00:1", "RFC 8215"),
        ("fec0::1", "site-local"),
        ("3fff::1", "RFC 9637"),
        ("5f00::1", "SRv6"),
        ("2001:db8::1", "documentation"),
        ("::ffff:10.0.0.1", "RFC 1918"),
        ("64:ff9b::7f00:1", "loopback"),
        ("2002:a9fe:a9fe::", "link-local"),
        ("4000::1", "global unicast"),
    ],
)
def test_the_refusal_names_the_block_and_its_rfc(address, reason):
    assert reason in url_policy.refusal_reason(ipaddress.ip_address(address))


@pytest.mark.parametrize("host", PUBLIC)
def test_globally_reachable_addresses_are_allowed(host):
    assert url_policy.refusal_reason(url_policy.url_parse(f"http://{host}/").address) is None


# --- at create time ----------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("block", sorted({b for b, _, _ in CASES}))
def test_a_webhook_to_any_form_of_a_non_public_address_is_refused_at_create(block, settings):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    site = SiteFactory()
    api = client_for(site)
    for _, form, host in (c for c in CASES if c[0] == block):
        response = api.post("/api/v1/webhooks", {"url": f"http://{host}/hook", "events": ["*"]}, format="json")
        assert response.status_code == 400, (form, host, response.content)
        message = response.json()["message"]
        assert "non-public address" in message or "dotted decimal" in message, (form, host, message)
    assert not Webhook.objects.filter(site=site).exists()


@pytest.mark.django_db
def test_the_create_message_says_which_block_refused_the_address(settings):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    api = client_for(SiteFactory())
    response = api.post("/api/v1/webhooks", {"url": "http://[64:ff9b:1::a00:1]/", "events": ["*"]}, format="json")
    assert response.status_code == 400
    assert "64:ff9b:1::/48, local-use IPv4/IPv6 translation, RFC 8215" in response.json()["message"]
    response = api.post("/api/v1/webhooks", {"url": "http://0x7f.0.0.1/", "events": ["*"]}, format="json")
    assert "it reads as 127.0.0.1" in response.json()["message"]


# --- at send time ------------------------------------------------------------------------------
@pytest.fixture
def sandbox(monkeypatch, receiver):
    """Every connection the client opens goes to `receiver` on loopback, whatever address it was for;
    the addresses asked for are recorded in the list returned."""
    asked: list[str] = []
    real = aiohappyeyeballs.start_connection

    async def to_receiver(addr_infos, **kwargs):
        asked.extend(str(info[4][0]) for info in addr_infos)
        port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
        return await real([(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))], **kwargs)

    monkeypatch.setattr(aiohappyeyeballs, "start_connection", to_receiver)
    return asked


@pytest.fixture
def dns(monkeypatch):
    """`name.test` resolves to whatever the test puts in the returned dict (a DNS that changed)."""
    answers: dict[str, str] = {}

    def host_addresses(host, port):
        return [ipaddress.ip_address(answers[host])]

    monkeypatch.setattr(url_policy, "host_addresses", host_addresses)
    return answers


def post(url: str) -> http.OutboundResult:
    return http.post(http.OutboundRequest(url=url, body=b"{}", headers={"Content-Type": "application/json"}))


def test_the_sandbox_lets_a_public_address_through_to_the_loopback_receiver(settings, sandbox, dns, receiver):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    dns["public.test"] = "8.8.8.8"
    result = post("http://public.test/hook")
    assert result.status_code == 200 and sandbox == ["8.8.8.8"] and len(receiver.received) == 1


@pytest.mark.parametrize("block, form, host", CASES, ids=[f"{b}-{f}" for b, f, _ in CASES])
def test_a_request_to_any_form_of_a_non_public_address_is_refused_at_send_time(
    block, form, host, settings, sandbox, dns, receiver
):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    result = post(f"http://{host}/hook")
    assert result.status_code is None and result.error.startswith("refused:"), (host, result.error)
    if form in ("dotted", "literal"):
        dns["rebound.test"] = host.strip("[]")  # the DNS answer changed after the webhook was created
        result = post("http://rebound.test/hook")
        assert result.error.startswith("refused:") and "non-public address" in result.error, result.error
    assert sandbox == [] and receiver.received == [], "nothing may be connected to"


@pytest.mark.django_db(transaction=True)
def test_a_delivery_whose_host_now_resolves_to_a_non_public_address_fails_with_the_reason(settings, sandbox, dns, receiver):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    settings.AGENTBOT_RETRY_SCHEDULE = [0]
    site = SiteFactory()
    dns["hooks.test"] = "8.8.8.8"
    created = client_for(site).post("/api/v1/webhooks", {"url": "http://hooks.test/in", "events": ["*"]}, format="json")
    assert created.status_code == 201, created.content
    dns["hooks.test"] = "169.254.169.254"
    try:
        with transaction.atomic():
            event, _ = event_publish(site=site, event_type="message.created", data=MESSAGE)
        delivery = Delivery.objects.get(event=event)
        deliveries_send(ids=[delivery.id], token=delivery.lease_token)
    finally:
        engine.engine_stop(timeout=5)
    attempt = delivery.attempts.get()
    assert attempt.status_code is None and "169.254.169.254 is in 169.254.0.0/16, link-local, RFC 3927" in attempt.error
    assert sandbox == [] and receiver.received == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "host", ["[64:ff9b:1::a00:1]", "[::ffff:0:7f00:1]", "0x7f.0.0.1", "2130706433", "[fec0::1]", "[5f00::1]"]
)
def test_a_chat2desk_api_url_and_a_post_url_are_held_to_the_same_policy(host, settings):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    api = client_for(SiteFactory())
    chat2desk = api.post(
        "/api/v1/integrations", {"connector_type": "chat2desk", "name": "C", "api_url": f"http://{host}"}, format="json"
    )
    assert chat2desk.status_code == 400 and "api_url" in chat2desk.json()["message"], chat2desk.content
    channel = api.post(
        "/api/v1/integrations",
        {"connector_type": "webhook", "name": "IVR", "mode": "async", "post_url": f"http://{host}/replies"},
        format="json",
    )
    assert channel.status_code == 400 and "post_url" in channel.json()["message"], channel.content
