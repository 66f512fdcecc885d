"""Writes for sites and API keys."""

import threading
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from core.models import SITE_ID_RE, ApiKey, Site, hash_api_key


def site_get_or_create(*, site_id: str, name: str = "") -> tuple[Site, bool]:
    if not site_id.startswith("site_"):
        site_id = f"site_{site_id}"
    if not SITE_ID_RE.match(site_id):
        raise ValidationError("a site id is 'site_' followed by 1 to 60 lowercase letters, digits, '-' or '_', as in site_acme")
    return Site.objects.get_or_create(id=site_id, defaults={"name": name})


def api_key_create(*, site: Site, name: str = "") -> tuple[ApiKey, str]:
    """Returns the stored key and the plain key, which is shown this once and never stored."""
    plain = ApiKey.generate()
    key = ApiKey.objects.create(site=site, name=name, prefix=plain[:10], key_hash=hash_api_key(plain))
    return key, plain


# Keys found valid, by hash, for AGENTBOT_API_KEY_CACHE_SECONDS: looking a key up cost a third of
# a publish's CPU in the web process. A key revoked in another process stops working within that
# time; in this one, at once (api_key_forget).
_known: dict[str, tuple[float, ApiKey]] = {}
_known_lock = threading.Lock()
_KNOWN_MAX = 10_000


def api_key_authenticate(*, plain: str) -> ApiKey | None:
    key_hash = hash_api_key(plain)
    ttl = settings.AGENTBOT_API_KEY_CACHE_SECONDS
    found = _known.get(key_hash)
    if found is not None and found[0] > time.monotonic():
        return found[1]
    key = ApiKey.objects.select_related("site").filter(key_hash=key_hash, revoked_at__isnull=True).first()
    if key is None:
        api_key_forget(key_hash=key_hash)
        return None
    now = timezone.now()
    # Touch at most once a minute: a busy integrator should not cost a write per request.
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    if ttl > 0:
        with _known_lock:
            if len(_known) >= _KNOWN_MAX:
                _known.clear()
            _known[key_hash] = (time.monotonic() + ttl, key)
    return key


def api_key_forget(*, key_hash: str | None = None) -> None:
    """Drop one key (or all) from this process's cache of valid keys: on revocation and deletion."""
    with _known_lock:
        if key_hash is None:
            _known.clear()
        else:
            _known.pop(key_hash, None)
