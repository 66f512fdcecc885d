"""With DJANGO_COOKIE_SAMESITE=None the session and CSRF cookies are Partitioned (CHIPS), so a
host app's iframe keeps them where third-party cookies are blocked; with Lax they are as before."""

import pytest
from django.test import Client

from portal.services import portal_link_create

pytestmark = pytest.mark.django_db


def set_cookies(settings, site, samesite: str) -> dict[str, str]:
    settings.SESSION_COOKIE_SAMESITE = settings.CSRF_COOKIE_SAMESITE = samesite
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = samesite == "None"
    _, token = portal_link_create(site=site)
    client = Client()
    response = client.post("/portal/enter", {"token": token})
    page = client.get("/portal/")
    return {
        name: morsel.OutputString()
        for r in (response, page)
        for name, morsel in r.cookies.items()
        if name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME)
    }


def test_cookies_are_partitioned_when_samesite_is_none(settings, site):
    cookies = set_cookies(settings, site, "None")
    assert set(cookies) == {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME}
    for header in cookies.values():
        assert header.endswith("; Partitioned") and "Secure" in header and "SameSite=None" in header


def test_cookies_are_not_partitioned_when_samesite_is_lax(settings, site):
    cookies = set_cookies(settings, site, "Lax")
    assert cookies and not any("Partitioned" in header for header in cookies.values())
