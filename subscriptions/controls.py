"""Delivery controls of a webhook, checked before they are stored: the headers it adds, how it
authenticates, its client certificate for mutual TLS, and its rate limit. (Its filter is
subscriptions/filters.py.) Each check returns what to store or raises a ValidationError whose
message names the bad part."""

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from subscriptions.url_policy import UrlNotAllowed, check_url

# RFC 9110 (7230) token: the characters a header's name may hold.
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
MAX_HEADERS = 20
MAX_HEADER_VALUE = 4096

# What the service itself sends, or what HTTP owns: a webhook cannot set these. The formats'
# signature headers are named here (a test in tests/deliveries checks every format's headers are).
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "host",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "user-agent",
        "authorization",
        "x-chatzuri-signature",
        "x-webhook-signature",
    }
)
RESERVED_PREFIXES = ("x-agentbot-", "webhook-", "proxy-")


def header_reserved(name: str) -> bool:
    lower = name.lower()
    return lower in RESERVED_HEADERS or lower.startswith(RESERVED_PREFIXES)


def headers_validate(headers) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise ValidationError({"headers": 'headers are an object of name → value, as in {"X-Api-Key": "…"}'})
    if len(headers) > MAX_HEADERS:
        raise ValidationError({"headers": f"at most {MAX_HEADERS} headers"})
    bad_names = [n for n in headers if not isinstance(n, str) or not HEADER_NAME.match(n)]
    if bad_names:
        raise ValidationError(
            {"headers": f"{bad_names[0]!r} is not a header name (letters, digits and !#$%&'*+.^_`|~- only, at most 100)"}
        )
    lowered = [n.lower() for n in headers]
    if len(set(lowered)) != len(lowered):
        raise ValidationError({"headers": "a header is named twice (names are case-insensitive)"})
    reserved = sorted(n for n in headers if header_reserved(n))
    if reserved:
        raise ValidationError(
            {
                "headers": f"{', '.join(reserved)} cannot be set: the service sends its own (content type, signatures, "
                "event and delivery id, webhook-* and X-Agentbot-*); credentials go in auth"
            }
        )
    for name, value in headers.items():
        if not isinstance(value, str):
            raise ValidationError({"headers": f"the value of {name} must be a string"})
        if len(value) > MAX_HEADER_VALUE:
            raise ValidationError({"headers": f"the value of {name} is longer than {MAX_HEADER_VALUE} characters"})
        if any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in value):
            raise ValidationError({"headers": f"the value of {name} must not contain line breaks or control characters"})
        if not value.isascii():
            raise ValidationError({"headers": f"the value of {name} must be ASCII text (HTTP header values are bytes)"})
    return dict(headers)


# --- authentication ---------------------------------------------------------------------------
AUTH_TYPES = ("none", "basic", "bearer", "oauth2")
# Per type: its public fields (stored in `auth`, shown) and its secret field (stored encrypted in
# `auth_secret`, never shown again).
AUTH_FIELDS = {
    "none": ((), None),
    "basic": (("username",), "password"),
    "bearer": ((), "token"),
    "oauth2": (("token_url", "client_id", "scope", "audience"), "client_secret"),
}
AUTH_REQUIRED = {"basic": ("username",), "oauth2": ("token_url", "client_id")}
MAX_AUTH_TEXT = 2048


@dataclass(frozen=True)
class Auth:
    public: dict  # what `Webhook.auth` stores: {"type": …, public fields}; {} for none
    secret: str


def auth_validate(auth, *, stored: dict | None = None, stored_secret: str = "") -> Auth:
    """The auth to store. A secret left out keeps the stored one when the type stays the same."""
    if auth is None:
        return Auth({}, "")
    if not isinstance(auth, dict):
        raise ValidationError({"auth": 'auth is an object, as in {"type": "bearer", "token": "…"}'})
    kind = auth.get("type")
    if kind not in AUTH_TYPES:
        raise ValidationError({"auth": f"auth.type must be one of {', '.join(AUTH_TYPES)}"})
    public_names, secret_name = AUTH_FIELDS[kind]
    unknown = sorted(set(auth) - {"type", *public_names, *([secret_name] if secret_name else [])})
    if unknown:
        allowed = ", ".join(["type", *public_names, *([secret_name] if secret_name else [])])
        raise ValidationError({"auth": f"auth.{unknown[0]} is not a field of {kind} auth; its fields: {allowed}"})
    for name in (*public_names, *([secret_name] if secret_name else [])):
        value = auth.get(name)
        if value is not None and not isinstance(value, str):
            raise ValidationError({"auth": f"auth.{name} must be a string"})
        if value and (len(value) > MAX_AUTH_TEXT or any(ord(c) < 32 for c in value)):
            raise ValidationError({"auth": f"auth.{name} must be at most {MAX_AUTH_TEXT} characters, without control characters"})
    if kind == "none":
        return Auth({}, "")
    public = {"type": kind, **{name: auth.get(name) or "" for name in public_names}}
    for name in AUTH_REQUIRED.get(kind, ()):
        if not public[name]:
            raise ValidationError({"auth": f"auth.{name} is required for {kind} auth"})
    if kind == "basic" and ":" in public["username"]:
        raise ValidationError({"auth": "auth.username must not contain a colon (HTTP Basic separates it with one)"})
    if kind == "oauth2":
        try:
            check_url(public["token_url"])
        except UrlNotAllowed as exc:
            raise ValidationError({"auth": f"auth.token_url: {exc}"}) from exc
    secret = auth.get(secret_name) or ""
    if not secret:
        if stored and stored.get("type") == kind and stored_secret:
            secret = stored_secret
        else:
            raise ValidationError({"auth": f"auth.{secret_name} is required for {kind} auth"})
    return Auth(public, secret)


def auth_shown(public: dict) -> dict:
    """What the API and admin show of a webhook's auth: the type and its public fields, never the secret."""
    return dict(public) if public else {"type": "none"}


# --- rate limit -------------------------------------------------------------------------------
RATE_PERIODS = {"per_second": 1.0, "per_minute": 60.0}
MAX_RATE = 10_000


def rate_limit_validate(rate_limit) -> dict | None:
    if rate_limit is None or rate_limit == {}:
        return None
    if not isinstance(rate_limit, dict) or len(rate_limit) != 1 or next(iter(rate_limit)) not in RATE_PERIODS:
        raise ValidationError({"rate_limit": 'rate_limit is {"per_second": N} or {"per_minute": N}, or null for none'})
    ((period, count),) = rate_limit.items()
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_RATE:
        raise ValidationError({"rate_limit": f"rate_limit.{period} is a whole number from 1 to {MAX_RATE}"})
    return {period: count}


def rate_interval(rate_limit: dict | None) -> float | None:
    """Seconds between two sends under `rate_limit`, or None for no limit."""
    if not rate_limit:
        return None
    ((period, count),) = rate_limit.items()
    return RATE_PERIODS[period] / count


# --- mutual TLS -------------------------------------------------------------------------------
MAX_PEM = 32_768


def tls_validate(*, cert: str, key: str, ca: str) -> tuple[str, str, str]:
    """A client certificate and its key (both or neither) and a CA bundle, each PEM; checked by
    loading them as the engine will."""
    cert, key, ca = (cert or "").strip(), (key or "").strip(), (ca or "").strip()
    if bool(cert) != bool(key):
        raise ValidationError(
            {"tls_client_cert" if not cert else "tls_client_key": "give the client certificate and its key together"}
        )
    for field, value in (("tls_client_cert", cert), ("tls_client_key", key), ("tls_ca_cert", ca)):
        if len(value) > MAX_PEM:
            raise ValidationError({field: f"at most {MAX_PEM} characters of PEM"})
        if value and "-----BEGIN " not in value:
            raise ValidationError({field: "PEM text is expected (-----BEGIN …-----)"})
    if cert or ca:
        from subscriptions.tls import ssl_context_build  # the ssl module only when there is TLS to check

        try:
            ssl_context_build(cert=cert, key=key, ca=ca)
        except ValueError as exc:
            raise ValidationError({"tls_client_cert" if cert else "tls_ca_cert": str(exc)}) from exc
    return cert, key, ca
