"""Cookies an embedding page's iframe can keep: with SameSite=None, the session and CSRF cookies are
also `Partitioned` (CHIPS), so a browser that blocks third-party cookies (Chrome's incognito, or
with the setting on) still keeps them for the portal framed by a host app, each host's apart."""

from http.cookies import Morsel

from django.conf import settings


class PartitionedMorsel(Morsel):
    def OutputString(self, attrs=None):  # noqa: N802 - Morsel's own name
        return super().OutputString(attrs) + "; Partitioned"


def partitioned_cookies(get_response):
    def middleware(request):
        response = get_response(request)
        if settings.SESSION_COOKIE_SAMESITE != "None":
            return response
        for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME):
            morsel = response.cookies.get(name)
            if morsel is not None and morsel["secure"] and not isinstance(morsel, PartitionedMorsel):
                partitioned = PartitionedMorsel()
                partitioned.update(morsel)
                partitioned.set(morsel.key, morsel.value, morsel.coded_value)
                dict.__setitem__(response.cookies, name, partitioned)
        return response

    return middleware
