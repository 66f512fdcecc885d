"""Writes for sites and API keys."""

from django.core.exceptions import ValidationError
from django.utils import timezone

from agentbot.models import SITE_ID_RE, ApiKey, Site, hash_api_key


def site_get_or_create(*, site_id: str, name: str = "") -> tuple[Site, bool]:
    if not site_id.startswith("site_"):
        site_id = f"site_{site_id}"
    if not SITE_ID_RE.match(site_id):
        raise ValidationError(
            "a site id is 'site_' followed by 1 to 60 lowercase letters, digits, '-' or '_', as in site_acme"
        )
    return Site.objects.get_or_create(id=site_id, defaults={"name": name})


def api_key_create(*, site: Site, name: str = "") -> tuple[ApiKey, str]:
    """Returns the stored key and the plain key, which is shown this once and never stored."""
    plain = ApiKey.generate()
    key = ApiKey.objects.create(site=site, name=name, prefix=plain[:10], key_hash=hash_api_key(plain))
    return key, plain


def api_key_authenticate(*, plain: str) -> ApiKey | None:
    key = ApiKey.objects.select_related("site").filter(key_hash=hash_api_key(plain), revoked_at__isnull=True).first()
    if key is not None:
        now = timezone.now()
        # Touch at most once a minute: a busy integrator should not cost a write per request.
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key
