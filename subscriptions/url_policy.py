"""Which webhook URLs we are willing to call.

Only http(s) URLs with a host. Unless AGENTBOT_ALLOW_PRIVATE_URLS is on, a host that resolves to
anything but a public address (loopback, private, link-local such as 169.254.169.254, unique-local,
multicast, unspecified, or an IPv6 address that embeds one of those) is refused, at create time and
again at send time, because DNS can change in between.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlNotAllowed(ValueError):
    pass


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in ipaddress.ip_network("64:ff9b::/96") or ip in ipaddress.ip_network("::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not is_public_address(embedded):
            return False
    return ip.is_global and not ip.is_multicast


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or UrlNotAllowed saying what is wrong."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise UrlNotAllowed("the URL must not contain spaces or control characters (percent-encode them)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlNotAllowed(f"the URL is not valid: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise UrlNotAllowed("the URL must start with http:// or https://")
    if not parts.hostname:
        raise UrlNotAllowed("the URL must name a host, as in https://example.com/hooks")
    if parts.username or parts.password:
        raise UrlNotAllowed("the URL must not carry a user name or password; use the signing secret")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve_allowed(url: str) -> list[IPAddress]:
    """The addresses of the URL's host that we may connect to; raises UrlNotAllowed otherwise."""
    _, host, port = split_url(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlNotAllowed(f"the host {host!r} cannot be resolved") from exc
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
    if settings.AGENTBOT_ALLOW_PRIVATE_URLS:
        return addresses
    refused = [a for a in addresses if not is_public_address(a)]
    if refused:
        raise UrlNotAllowed(
            f"the host {host!r} resolves to a non-public address ({refused[0]}); webhooks may only "
            "call public addresses (set AGENTBOT_ALLOW_PRIVATE_URLS=1 for local development)"
        )
    return addresses


def check_url(url: str) -> None:
    split_url(url)
    if not settings.AGENTBOT_ALLOW_PRIVATE_URLS:
        resolve_allowed(url)
