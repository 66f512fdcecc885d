"""Bearer API keys: each key belongs to one site, and a request sees only that site's objects."""

from dataclasses import dataclass

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from core.models import Site
from core.ratelimit import rate_take
from core.services import api_key_authenticate


@dataclass
class SiteClient:
    """The caller of an API request: whoever holds a key of `site`."""

    site: Site
    is_authenticated: bool = True
    is_active: bool = True


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").strip()
        if not header:
            return None
        scheme, _, plain = header.partition(" ")
        if scheme.lower() != "bearer" or not plain.strip():
            raise exceptions.AuthenticationFailed('send the API key as "Authorization: Bearer <key>"')
        key = api_key_authenticate(plain=plain.strip())
        if key is None:
            # Guessing keys costs a client its address's bucket of failures (docs/limits.md).
            verdict = rate_take(
                key=f"auth-failed:{request.META.get('REMOTE_ADDR', '')}",
                rate=settings.AGENTBOT_API_AUTH_FAILURE_RATE,
                burst=settings.AGENTBOT_API_AUTH_FAILURE_BURST,
            )
            if not verdict.allowed:
                raise exceptions.Throttled(
                    wait=verdict.retry_after, detail="too many requests with API keys that are not valid from your address"
                )
            raise exceptions.AuthenticationFailed("this API key is not valid (unknown or revoked)")
        return SiteClient(site=key.site), key

    def authenticate_header(self, request):
        return self.keyword


class HasSiteKey(permissions.BasePermission):
    message = 'an API key is required: send "Authorization: Bearer <key>" (make one with manage.py create_api_key)'

    def has_permission(self, request, view):
        return isinstance(request.user, SiteClient)


class ApiKeyRateThrottle(throttling.BaseThrottle):
    """AGENTBOT_API_RATE requests a second per API key on average, AGENTBOT_API_BURST at once,
    shared by every web process (core/ratelimit.py); past it, 429 with Retry-After."""

    def allow_request(self, request, view):
        key = getattr(request, "auth", None)
        if key is None or not hasattr(key, "pk"):
            return True
        verdict = api_key_rate_take(key)
        self.retry_after = verdict.retry_after
        return verdict.allowed

    def wait(self):
        return max(self.retry_after, 1.0)


def api_key_rate_take(key):
    """One request of `key` from its bucket (every path that serves a key's request takes one)."""
    return rate_take(key=f"api-key:{key.pk}", rate=settings.AGENTBOT_API_RATE, burst=settings.AGENTBOT_API_BURST)


def site_of(request) -> Site:
    return request.user.site


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key of one site."}
