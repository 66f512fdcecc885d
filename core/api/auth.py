"""Bearer API keys: each key belongs to one site, and a request sees only that site's objects."""

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from core.models import Site
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
            raise exceptions.AuthenticationFailed("this API key is not valid (unknown or revoked)")
        return SiteClient(site=key.site), key

    def authenticate_header(self, request):
        return self.keyword


class HasSiteKey(permissions.BasePermission):
    message = 'an API key is required: send "Authorization: Bearer <key>" (make one with manage.py create_api_key)'

    def has_permission(self, request, view):
        return isinstance(request.user, SiteClient)


def site_of(request) -> Site:
    return request.user.site


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key of one site."}
