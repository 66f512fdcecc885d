"""Which URLs the service is willing to call: webhooks, Chat2Desk's API URL, the webhook channel's
POST_URL and the language model's base URL all pass here, at create time and again at connect time.

Only http(s) URLs with a host, no user info, no control characters. A URL is parsed once, by
yarl (the parser aiohttp itself uses), into a `Target`; the client connects to that very URL
object, so the host that is checked is the host that is connected to.

Unless AGENTBOT_ALLOW_PRIVATE_URLS is on, every address the host is (an IP literal) or resolves
to must be globally reachable, as IANA's special-purpose address registries say (the tables below,
each block with its RFC; Python 3.11's `ipaddress.is_global` predates several of them). An IPv6
address that carries an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo, ...) is also decided on
the IPv4 address it carries. IPv4 written in a legacy form (`2130706433`, `0177.0.0.1`,
`0x7f.0.0.1`, `127.1`) is refused whatever it stands for: write it in dotted decimal.
"""

import ipaddress
import re
import socket
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote as urllib_unquote

from django.conf import settings
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlNotAllowed(ValueError):
    pass


# --- the registries ---------------------------------------------------------------------------
# (block, name, RFC, globally reachable). A True inside a False block is a more specific entry
# that the registry lists as reachable; the most specific block decides.
# https://www.iana.org/assignments/iana-ipv4-special-registry/
IPV4_SPECIAL = [
    ("0.0.0.0/8", "this network", "RFC 791", False),
    ("0.0.0.0/32", "this host on this network", "RFC 1122", False),
    ("10.0.0.0/8", "private use", "RFC 1918", False),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)", "RFC 6598", False),
    ("127.0.0.0/8", "loopback", "RFC 1122", False),
    ("169.254.0.0/16", "link-local", "RFC 3927", False),
    ("172.16.0.0/12", "private use", "RFC 1918", False),
    ("192.0.0.0/24", "IETF protocol assignments", "RFC 6890", False),
    ("192.0.0.0/29", "IPv4 service continuity prefix", "RFC 7335", False),
    ("192.0.0.8/32", "IPv4 dummy address", "RFC 7600", False),
    ("192.0.0.9/32", "Port Control Protocol anycast", "RFC 7723", True),
    ("192.0.0.10/32", "TURN anycast", "RFC 8155", True),
    ("192.0.0.170/32", "NAT64/DNS64 discovery", "RFC 8880", False),
    ("192.0.0.171/32", "NAT64/DNS64 discovery", "RFC 8880", False),
    ("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737", False),
    ("192.31.196.0/24", "AS112-v4", "RFC 7535", True),
    ("192.52.193.0/24", "AMT", "RFC 7450", True),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast", "RFC 7526", False),
    ("192.168.0.0/16", "private use", "RFC 1918", False),
    ("192.175.48.0/24", "direct delegation AS112 service", "RFC 7534", True),
    ("198.18.0.0/15", "benchmarking", "RFC 2544", False),
    ("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737", False),
    ("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737", False),
    # Not in the special-purpose registry but in the multicast one: not a unicast host to call.
    ("224.0.0.0/4", "multicast", "RFC 5771", False),
    ("240.0.0.0/4", "reserved", "RFC 1112", False),
    ("255.255.255.255/32", "limited broadcast", "RFC 919", False),
]

# https://www.iana.org/assignments/iana-ipv6-special-registry/
# None: the registry says "N/A" (an address of a transition mechanism): the IPv4 address it
# carries decides.
IPV6_SPECIAL = [
    ("::/128", "unspecified address", "RFC 4291", False),
    ("::1/128", "loopback", "RFC 4291", False),
    # IPv4-mapped is how a dual-stack socket writes an IPv4 peer: it is that IPv4 address.
    ("::ffff:0:0/96", "IPv4-mapped", "RFC 4291", None),
    # Not in the registry: deprecated forms inside ::/8 (reserved by the IETF, never routed).
    ("::/96", "IPv4-compatible (deprecated)", "RFC 4291", False),
    ("::ffff:0:0:0/96", "IPv4-translated (obsolete SIIT form)", "RFC 2765", False),
    ("64:ff9b::/96", "IPv4/IPv6 translation (well-known NAT64 prefix)", "RFC 6052", None),
    ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation", "RFC 8215", False),
    ("100::/64", "discard-only", "RFC 6666", False),
    ("100:0:0:1::/64", "dummy IPv6 prefix", "RFC 9780", False),
    ("2001::/23", "IETF protocol assignments", "RFC 2928", False),
    ("2001::/32", "Teredo", "RFC 4380", None),
    ("2001:1::1/128", "Port Control Protocol anycast", "RFC 7723", True),
    ("2001:1::2/128", "TURN anycast", "RFC 8155", True),
    ("2001:1::3/128", "DNS-SD service registration protocol anycast", "RFC 9665", True),
    ("2001:2::/48", "benchmarking", "RFC 5180", False),
    ("2001:3::/32", "AMT", "RFC 7450", True),
    ("2001:4:112::/48", "AS112-v6", "RFC 7535", True),
    ("2001:10::/28", "deprecated (previously ORCHID)", "RFC 4843", False),
    ("2001:20::/28", "ORCHIDv2", "RFC 7343", True),
    ("2001:30::/28", "drone remote ID protocol entity tags", "RFC 9374", True),
    ("2001:db8::/32", "documentation", "RFC 3849", False),
    ("2002::/16", "6to4", "RFC 3056", None),
    ("2620:4f:8000::/48", "direct delegation AS112 service", "RFC 7534", True),
    ("3fff::/20", "documentation", "RFC 9637", False),
    ("5f00::/16", "segment routing (SRv6) SIDs", "RFC 9602", False),
    ("fc00::/7", "unique-local", "RFC 4193", False),
    ("fe80::/10", "link-local unicast", "RFC 4291", False),
    # Not special-purpose, but outside global unicast all the same (IANA IPv6 address space).
    ("fec0::/10", "site-local (deprecated)", "RFC 3879", False),
    ("ff00::/8", "multicast", "RFC 4291", False),
]
# IANA's IPv6 address space: global unicast is 2000::/3; the rest is reserved, multicast or local.
IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


@dataclass(frozen=True)
class Block:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    name: str
    rfc: str
    reachable: bool | None

    def __str__(self) -> str:
        return f"{self.network}, {self.name}, {self.rfc}"


def _blocks(table) -> list[Block]:
    # Most specific first, so the first match is the one that decides.
    blocks = [Block(ipaddress.ip_network(net), name, rfc, reachable) for net, name, rfc, reachable in table]
    return sorted(blocks, key=lambda b: -b.network.prefixlen)


_V4_BLOCKS = _blocks(IPV4_SPECIAL)
_V6_BLOCKS = _blocks(IPV6_SPECIAL)


def special_block(ip: IPAddress) -> Block | None:
    """The most specific special-purpose block holding `ip`, or None."""
    for block in _V4_BLOCKS if ip.version == 4 else _V6_BLOCKS:
        if ip in block.network:
            return block
    return None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, -translated and -compatible,
    NAT64 (well-known and local-use prefixes, RFC 6052 /96 form), 6to4, and Teredo's server and
    (de-obfuscated) client."""
    value = int(ip)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if ip.teredo:
        return list(ip.teredo)
    if ip.sixtofour:
        return [ip.sixtofour]
    for prefix in ("::ffff:0:0/96", "::ffff:0:0:0/96", "::/96", "64:ff9b::/96", "64:ff9b:1::/48"):
        if ip in ipaddress.IPv6Network(prefix):
            return [low32]
    return []


def refusal_reason(ip: IPAddress) -> str | None:
    """Why `ip` is not globally reachable (its block and RFC), or None when it is."""
    block = special_block(ip)
    if block is not None and block.reachable is False:
        return f"{ip} is in {block}"
    if ip.version == 6:
        for carried in embedded_ipv4(ip):
            inner = refusal_reason(carried)
            if inner is not None:
                return f"{ip} carries the IPv4 address {inner}"
        if block is None and ip not in IPV6_GLOBAL_UNICAST:
            return f"{ip} is outside {IPV6_GLOBAL_UNICAST}, IPv6 global unicast"
    return None


def is_public_address(ip: IPAddress) -> bool:
    return refusal_reason(ip) is None


# --- one parse of a URL -----------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """A URL as it will be connected to: `url` is what the HTTP client is given."""

    url: URL
    scheme: str
    host: str  # as connected: lower case, IDNA-encoded, no brackets
    port: int
    address: IPAddress | None  # the host when it is an IP literal


_NUMERIC_LABEL = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")
_DOTTED_DECIMAL = re.compile(
    r"^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$"
)


def _literal(host: str) -> IPAddress | None:
    """The host as an IP address when it is one; UrlNotAllowed for IPv4 in a legacy form (a last
    label that is a number makes a host an IPv4 address, as browsers read it) or a zone id."""
    if ":" in host:
        if "%" in host:
            raise UrlNotAllowed("the URL's IPv6 address must not carry a zone id (%...)")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise UrlNotAllowed(f"the URL's host [{host}] is not a valid IPv6 address") from None
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels = labels[:-1]
    if not _NUMERIC_LABEL.match(labels[-1]):
        return None
    if _DOTTED_DECIMAL.match(host):
        return ipaddress.IPv4Address(host)
    try:
        meant = f" (it reads as {socket.inet_ntoa(socket.inet_aton(host.rstrip('.')))})"
    except OSError:
        meant = ""
    raise UrlNotAllowed(
        f"the URL's host {host!r} is not an IPv4 address in dotted decimal{meant}; write an IPv4 "
        "address as four decimal numbers without leading zeros, as in 203.0.113.7"
    )


def _check_text(url) -> None:
    """A URL is a string without spaces or control characters, whatever its scheme."""
    if not isinstance(url, str):
        raise UrlNotAllowed("the URL must be a string")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise UrlNotAllowed("the URL must not contain spaces or control characters (percent-encode them)")


@lru_cache(maxsize=4096)
def url_parse(url: str) -> Target:
    """The URL's target, or UrlNotAllowed saying what is wrong with it."""
    _check_text(url)
    try:
        parsed = URL(url)
        port = parsed.port
        host = parsed.raw_host
    except (ValueError, TypeError) as exc:
        raise UrlNotAllowed(f"the URL is not valid: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise UrlNotAllowed("the URL must start with http:// or https://")
    if not host:
        raise UrlNotAllowed("the URL must name a host, as in https://example.com/hooks")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise UrlNotAllowed("the URL must not carry a user name or password; use the signing secret")
    if port is None or not 0 < port < 65536:
        raise UrlNotAllowed("the URL is not valid: its port must be between 1 and 65535")
    return Target(url=parsed, scheme=parsed.scheme, host=host, port=port, address=_literal(host))


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or UrlNotAllowed saying what is wrong."""
    target = url_parse(url)
    return target.scheme, target.host, target.port


def _refuse(target: Target, reason: str) -> UrlNotAllowed:
    what = "the URL's host is" if target.address is not None else f"the host {target.host!r} resolves to"
    return UrlNotAllowed(
        f"{what} a non-public address ({reason}); only globally reachable addresses may be called "
        "(set AGENTBOT_ALLOW_PRIVATE_URLS=1 for local development)"
    )


def host_addresses(host: str, port: int) -> list[IPAddress]:
    """What DNS (the system resolver) says `host` is."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


def _resolve(target: Target) -> list[IPAddress]:
    if target.address is not None:
        return [target.address]
    try:
        return host_addresses(target.host, target.port)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlNotAllowed(f"the host {target.host!r} cannot be resolved") from exc


def resolve_allowed(url: str | Target) -> list[IPAddress]:
    """The addresses of the URL's host that we may connect to; raises UrlNotAllowed otherwise.
    Every address must be allowed, not just one: the client may connect to any of them."""
    target = url if isinstance(url, Target) else url_parse(url)
    addresses = _resolve(target)
    if settings.AGENTBOT_ALLOW_PRIVATE_URLS:
        return addresses
    for ip in addresses:
        reason = refusal_reason(ip)
        if reason is not None:
            raise _refuse(target, reason)
    return addresses


def check_url(url: str) -> None:
    """The create-time check: the same parse and the same decision as at connect time (with
    AGENTBOT_ALLOW_PRIVATE_URLS on, a host need not resolve yet)."""
    target = url_parse(url)
    if not settings.AGENTBOT_ALLOW_PRIVATE_URLS:
        resolve_allowed(target)


# --- a message broker's URL (AMQP 0-9-1) -------------------------------------------------------
BROKER_SCHEMES = {"amqp": 5672, "amqps": 5671}
# How the stored URL writes the password, which is kept apart, encrypted (Webhook.broker_password).
MASKED_PASSWORD = "****"


@dataclass(frozen=True)
class BrokerTarget:
    """An `amqp(s)://user:password@host:port/vhost` URL as it will be connected to. `target` is the
    host and port for the address policy (the same decision as for an HTTP URL)."""

    target: Target
    tls: bool
    user: str
    password: str
    vhost: str

    @property
    def host(self) -> str:
        return self.target.host

    @property
    def port(self) -> int:
        return self.target.port


def is_broker_url(url) -> bool:
    """Whether `url` names a message broker rather than an HTTP endpoint (by its scheme alone)."""
    return isinstance(url, str) and url.strip().lower().startswith(tuple(f"{s}://" for s in BROKER_SCHEMES))


def _broker_vhost(path: str) -> str:
    """The virtual host, as the AMQP URI spec reads the path: none or `/` is the default vhost `/`,
    otherwise the one path segment, percent-decoded (`/%2F` is `/` too)."""
    if path in ("", "/"):
        return "/"
    segment = path[1:]
    if "/" in segment:
        raise UrlNotAllowed("the broker URL's path is the virtual host: one segment, with a / in it written %2F")
    try:
        vhost = urllib_unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise UrlNotAllowed("the broker URL's virtual host is not valid UTF-8") from None
    if not vhost or len(vhost.encode()) > 255:
        raise UrlNotAllowed("the broker URL's virtual host must be 1 to 255 bytes")
    return vhost


@lru_cache(maxsize=4096)  # each publish reads its webhook's URL, as url_parse is cached for each POST
def broker_url_parse(url: str) -> BrokerTarget:
    """The broker URL's target, or UrlNotAllowed saying what is wrong with it. User and password
    are required (a broker's default guest account only answers on its own machine); options in a
    query (certificate files, timeouts) are refused: the service sets those itself."""
    _check_text(url)
    try:
        parsed = URL(url)
        scheme, host, port = parsed.scheme, parsed.raw_host, parsed.explicit_port
    except (ValueError, TypeError) as exc:
        raise UrlNotAllowed(f"the URL is not valid: {exc}") from exc
    if scheme not in BROKER_SCHEMES:
        raise UrlNotAllowed("a broker URL must start with amqp:// or amqps://")
    if not host:
        raise UrlNotAllowed("the broker URL must name a host, as in amqps://user:password@rabbit.example.com/vhost")
    if not parsed.user or parsed.password is None or parsed.password == "":
        raise UrlNotAllowed("the broker URL must carry a user name and a password, as in amqps://user:password@host/vhost")
    if parsed.raw_query_string or parsed.raw_fragment:
        raise UrlNotAllowed("the broker URL must not have a query (?…) or fragment (#…): the service sets the connection options")
    port = BROKER_SCHEMES[scheme] if port is None else port
    if not 0 < port < 65536:
        raise UrlNotAllowed("the URL is not valid: its port must be between 1 and 65535")
    target = Target(url=parsed, scheme=scheme, host=host, port=port, address=_literal(host))
    return BrokerTarget(
        target, tls=scheme == "amqps", user=parsed.user, password=parsed.password, vhost=_broker_vhost(parsed.raw_path)
    )


def check_broker_url(url: str) -> BrokerTarget:
    """The create-time check of a broker URL: its form, and its host by the address policy."""
    broker = broker_url_parse(url)
    if not settings.AGENTBOT_ALLOW_PRIVATE_URLS:
        resolve_allowed(broker.target)
    return broker


def broker_url_masked(url: str) -> tuple[str, str]:
    """(the URL with its password written MASKED_PASSWORD, the password): what is stored in the
    clear and what is stored encrypted."""
    parsed = URL(url)
    password = parsed.password or ""
    return str(parsed.with_password(MASKED_PASSWORD)), password
