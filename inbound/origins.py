"""A webchat integration's allowed origins: the pages (scheme://host[:port]) whose widget may
connect. Validated where an integration is written (services, admin, API)."""

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_normalise(origin: str) -> str:
    """`scheme://host[:port]` in lower case, without the scheme's default port: how browsers send
    the Origin header. Raises ValueError naming what is wrong."""
    text = origin.strip().rstrip("/")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{origin!r} is not an origin: {exc}") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{origin!r} is not an origin: write scheme://host[:port], as in https://shop.example")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password or "*" in text:
        raise ValueError(f"{origin!r} is not an origin: only scheme://host[:port], no path, query or wildcard")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != DEFAULT_PORTS[parts.scheme] else "")


def origins_clean(text: str) -> str:
    """An integration's allowed origins as stored: one normalised origin per line, in the order
    given, without duplicates. Raises ValidationError on the `allowed_origins` field."""
    if not isinstance(text, str):
        raise ValidationError({"allowed_origins": "allowed_origins must be text: one origin per line"})
    cleaned: list[str] = []
    for line in text.replace(",", "\n").splitlines():
        if not line.strip():
            continue
        try:
            origin = origin_normalise(line)
        except ValueError as exc:
            raise ValidationError({"allowed_origins": str(exc)}) from None
        if origin not in cleaned:
            cleaned.append(origin)
    return "\n".join(cleaned)
