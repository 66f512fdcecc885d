"""Writes for the portal: links a host app asks for, and the site's embedding origins."""

import hashlib
import secrets
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core.models import Site
from portal.models import PortalLink, PortalSettings

LINK_SALT = "portal.link"
LINK_DEFAULT_SECONDS = 3600
LINK_MIN_SECONDS = 60
LINK_MAX_SECONDS = 7 * 24 * 3600


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def portal_link_validate_expires_in(expires_in) -> int:
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise ValidationError({"expires_in": "expires_in is a whole number of seconds, as in 3600"})
    if not LINK_MIN_SECONDS <= expires_in <= LINK_MAX_SECONDS:
        raise ValidationError({"expires_in": f"expires_in is between {LINK_MIN_SECONDS} and {LINK_MAX_SECONDS} seconds (7 days)"})
    return expires_in


def portal_link_create(*, site: Site, expires_in: int = LINK_DEFAULT_SECONDS, read_only: bool = False) -> tuple[PortalLink, str]:
    """A new single-use link and its token (returned once; only its hash is stored). The token is
    signed, so a tampered one is refused before any lookup."""
    expires_in = portal_link_validate_expires_in(expires_in)
    token = signing.Signer(salt=LINK_SALT).sign(secrets.token_urlsafe(32))
    link = PortalLink.objects.create(
        site=site,
        token_hash=_token_hash(token),
        read_only=bool(read_only),
        expires_at=timezone.now() + timedelta(seconds=expires_in),
    )
    return link, token


class LinkRefused(Exception):
    """Why a link does not open a portal: `invalid`, `used` or `expired`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def portal_link_redeem(*, token: str, now: datetime | None = None) -> PortalLink:
    """Mark the link used and return it; LinkRefused if it was tampered with, used or expired."""
    now = now or timezone.now()
    try:
        signing.Signer(salt=LINK_SALT).unsign(token or "")
    except signing.BadSignature as exc:
        raise LinkRefused("invalid") from exc
    with transaction.atomic():
        link = PortalLink.objects.select_for_update().select_related("site").filter(token_hash=_token_hash(token)).first()
        if link is None:
            raise LinkRefused("invalid")
        if link.used_at is not None:
            raise LinkRefused("used")
        if link.expires_at <= now:
            raise LinkRefused("expired")
        link.used_at = now
        link.save(update_fields=["used_at"])
    return link


def portal_links_purge(*, now: datetime | None = None) -> int:
    """Delete links that can no longer open anything (expired a day ago or more)."""
    now = now or timezone.now()
    deleted, _ = PortalLink.objects.filter(expires_at__lt=now - timedelta(days=1)).delete()
    return deleted


def portal_origin_validate(origin: str) -> str:
    """`https://app.example.com[:port]`, as a browser writes an origin: scheme, host, port only."""
    text = (origin or "").strip().rstrip("/")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValidationError({"allowed_origins": f"{origin!r} is not an origin"}) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ValidationError(
            {"allowed_origins": f"{origin!r} is not an origin: write scheme and host only, as in https://app.example.com"}
        )
    if parts.username or parts.password or any(ch in text for ch in " ;,'\""):
        raise ValidationError({"allowed_origins": f"{origin!r} is not an origin"})
    return f"{parts.scheme}://{parts.netloc.lower()}"


def portal_settings_update(*, site: Site, allowed_origins: list[str]) -> PortalSettings:
    if not isinstance(allowed_origins, list) or not all(isinstance(o, str) for o in allowed_origins):
        raise ValidationError({"allowed_origins": 'a list of origins, as ["https://app.example.com"]'})
    origins = list(dict.fromkeys(portal_origin_validate(o) for o in allowed_origins))
    settings, _ = PortalSettings.objects.update_or_create(site=site, defaults={"allowed_origins": origins})
    return settings


def portal_frame_origins(*, site: Site | None) -> tuple[str, ...]:
    if site is None:
        return ()
    settings = PortalSettings.objects.filter(site=site).first()
    return tuple(settings.allowed_origins) if settings else ()
