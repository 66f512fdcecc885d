"""Who is using the portal, for which site, and whether they may change anything.

A portal session lives in the Django session under one key: the site, how it was opened (a link
or a member's login), whether it is read-only, and when it ends. A member's role is read again on
every request, so a membership removed or turned to viewer in the admin applies at once.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from core.models import Site
from portal.models import PortalLink, SiteMembership
from portal.services import portal_frame_origins

SESSION_KEY = "portal"
ENDED_KEY = "portal_ended_site"
MEMBER_ENDED_KEY = "portal_member_ended"


@dataclass(frozen=True)
class PortalAccess:
    site: Site
    read_only: bool
    via: str  # "link" or "member"
    memberships: tuple[SiteMembership, ...] = ()

    @property
    def can_change(self) -> bool:
        return not self.read_only


def _until(now: datetime) -> str:
    return (now + timedelta(seconds=settings.AGENTBOT_PORTAL_SESSION_SECONDS)).isoformat()


def portal_session_start_link(request, *, link: PortalLink) -> None:
    # A new session key: a session id planted before the link was opened is worth nothing after.
    request.session.cycle_key()
    request.session.pop(ENDED_KEY, None)
    request.session[SESSION_KEY] = {
        "site": link.site_id,
        "via": "link",
        "read_only": link.read_only,
        "until": _until(timezone.now()),
    }


def portal_session_start_member(request, *, site_id: str) -> None:
    request.session.pop(MEMBER_ENDED_KEY, None)
    request.session[SESSION_KEY] = {"site": site_id, "via": "member", "until": _until(timezone.now())}


def portal_session_end(request) -> None:
    request.session.pop(SESSION_KEY, None)


def memberships_of(user) -> list[SiteMembership]:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return []
    return list(SiteMembership.objects.filter(user=user).select_related("site").order_by("site__name", "site_id"))


def portal_access(request) -> PortalAccess | None:
    """The portal session of this request, or None (none, ended, or no longer a member)."""
    data = request.session.get(SESSION_KEY)
    if not isinstance(data, dict):
        # A member who logged in elsewhere (the admin) starts on their first site.
        memberships = memberships_of(request.user)
        if not memberships or request.session.get(MEMBER_ENDED_KEY):
            return None
        portal_session_start_member(request, site_id=memberships[0].site_id)
        data = request.session[SESSION_KEY]
    try:
        until = datetime.fromisoformat(data["until"])
    except (KeyError, TypeError, ValueError):
        return None
    if until <= timezone.now():
        portal_session_end(request)
        if data.get("via") == "link":
            # Remembered so that the page saying so may be shown inside the host app's iframe.
            request.session[ENDED_KEY] = data.get("site")
        else:
            request.session[MEMBER_ENDED_KEY] = True  # no silent restart: the member logs in again
        return None
    if data.get("via") == "link":
        site = Site.objects.filter(pk=data.get("site")).first()
        return PortalAccess(site=site, read_only=bool(data.get("read_only")), via="link") if site else None
    memberships = tuple(memberships_of(request.user))
    current = next((m for m in memberships if m.site_id == data.get("site")), None)
    if current is None:
        return None
    return PortalAccess(
        site=current.site,
        read_only=current.role != SiteMembership.Role.EDITOR,
        via="member",
        memberships=memberships,
    )


def frame_headers(response, *, site: Site | None, frame_anywhere: bool = False):
    """No Referer leaves for another origin (`same-origin`: `no-referrer` would make browsers send
    `Origin: null` with the portal's own form posts, which CSRF protection rightly refuses); who may
    frame it: the site's allowed origins, else only the service itself. `frame_anywhere` is for the link's landing page, which shows nothing to click
    and must load inside the host app's iframe before the site is known."""
    response["Referrer-Policy"] = "same-origin"
    response["Cache-Control"] = "no-store"
    origins = portal_frame_origins(site=site)
    if frame_anywhere:
        ancestors = "*"
    else:
        ancestors = " ".join(["'self'", *origins])
    response["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        f"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
    )
    if origins or frame_anywhere:
        # X-Frame-Options cannot name other origins; frame-ancestors decides (and wins in browsers).
        response.xframe_options_exempt = True
    else:
        response["X-Frame-Options"] = "SAMEORIGIN"
    return response


def portal_page(*, change: bool = False):
    """A portal view: called with the request's PortalAccess; no session → the login page; a change
    by a read-only session or a viewer → 403; another site's object (Http404) → the portal's 404."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            access = portal_access(request)
            if access is None:
                ended = Site.objects.filter(pk=request.session.get(ENDED_KEY) or "").first()
                if ended is not None:
                    return frame_headers(render(request, "portal/ended.html", status=403), site=ended)
                response = redirect_to_login(request.get_full_path(), reverse("portal:login"))
                return frame_headers(response, site=None)
            if change and not access.can_change:
                response = render(request, "portal/refused.html", {"access": access}, status=403)
                return frame_headers(response, site=access.site)
            try:
                response = view(request, access, *args, **kwargs)
            except Http404:
                response = render(request, "portal/not_found.html", {"access": access}, status=404)
            return frame_headers(response, site=access.site)

        return wrapper

    return decorate
