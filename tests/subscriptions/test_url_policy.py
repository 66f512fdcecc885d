import ipaddress

import pytest

from subscriptions.url_policy import UrlNotAllowed, check_url, is_public_address, split_url


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:7f00:1::",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
    ],
)
def test_non_public_addresses_are_refused(address):
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url, phrase",
    [
        ("ftp://example.com/", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("http://", "must name a host"),
        ("https://a:b@example.com", "user name or password"),
        ("http://example.com:99999/", "not valid"),
        ("https://example.com/a b", "spaces or control characters"),
    ],
)
def test_malformed_urls_say_what_is_wrong(url, phrase):
    with pytest.raises(UrlNotAllowed, match=phrase):
        split_url(url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/", "http://localhost/", "http://[::1]/", "http://169.254.169.254/latest"])
def test_private_targets_are_refused_unless_allowed(url, settings):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    with pytest.raises(UrlNotAllowed, match="non-public address"):
        check_url(url)
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = True
    check_url(url)
