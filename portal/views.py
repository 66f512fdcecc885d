"""The portal's pages: thin views over the same services as the REST API, within one site."""

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core.errors import Refused
from deliveries.admin import body_as_sent, capped
from deliveries.selectors import deliveries_per_hour
from deliveries.services import operator
from portal import selectors
from portal.access import (
    frame_headers,
    memberships_of,
    portal_access,
    portal_page,
    portal_session_end,
    portal_session_start_link,
    portal_session_start_member,
)
from portal.forms import DeliveryFilterForm, RedeliverForm, WebhookForm
from portal.services import LinkRefused, portal_link_redeem
from portal.snippets import verification_snippet
from portal.templatetags.portal import STATUS_LABELS
from subscriptions import services as subscription_services
from subscriptions.event_types import CATALOGUE

STATE_LABELS = {
    "active": gettext_lazy("Active"),
    "paused": gettext_lazy("Paused"),
    "failing": gettext_lazy("Failing"),
    "circuit_open": gettext_lazy("Circuit open"),
    "disabled": gettext_lazy("Disabled"),
}
LINK_REFUSALS = {
    "invalid": gettext_lazy("This portal link is not valid. Ask your app for a new one."),
    "used": gettext_lazy("This portal link was already used. Each link opens the portal once: ask your app for a new one."),
    "expired": gettext_lazy("This portal link has expired. Ask your app for a new one."),
}
RECENT_DELIVERIES = 50
SECRET_SESSION_KEY = "portal_secret_once"


# --- ways in ------------------------------------------------------------------------------------
@csrf_exempt  # the link's token is the credential; a host app's iframe may not carry our CSRF cookie
def enter(request):
    """GET: a page whose script reads the token from the URL's #fragment (never sent to a server,
    so never in a log or a Referer), drops it from the address bar and POSTs it here."""
    if request.method == "GET":
        return frame_headers(render(request, "portal/enter.html"), site=None, frame_anywhere=True)
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    try:
        link = portal_link_redeem(token=request.POST.get("token", ""))
    except LinkRefused as refused:
        page = render(request, "portal/link_refused.html", {"reason": LINK_REFUSALS[refused.reason]}, status=403)
        return frame_headers(page, site=None, frame_anywhere=True)
    portal_session_start_link(request, link=link)
    return frame_headers(redirect("portal:webhooks"), site=link.site)


class LoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    redirect_authenticated_user = False

    def form_valid(self, form):
        response = super().form_valid(form)
        memberships = memberships_of(self.request.user)
        self.request.session.set_expiry(int(settings.AGENTBOT_PORTAL_SESSION_SECONDS))
        if memberships:
            portal_session_start_member(self.request, site_id=memberships[0].site_id)
        return response

    def get_default_redirect_url(self):
        return reverse("portal:webhooks")

    def dispatch(self, request, *args, **kwargs):
        return frame_headers(super().dispatch(request, *args, **kwargs), site=None)


@require_POST
def logout(request):
    portal_session_end(request)
    if request.user.is_authenticated and not request.user.is_staff:
        auth_views.auth_logout(request)
    return frame_headers(redirect("portal:login"), site=None)


@require_POST
def switch_site(request):
    """A member moves to another of their sites."""
    wanted = request.POST.get("site", "")
    if any(m.site_id == wanted for m in memberships_of(request.user)):
        portal_session_start_member(request, site_id=wanted)
        return frame_headers(redirect("portal:webhooks"), site=None)
    access = portal_access(request)
    return frame_headers(render(request, "portal/not_found.html", {"access": access}, status=404), site=None)


# --- webhooks ------------------------------------------------------------------------------------
def _row(webhook) -> dict:
    state, detail = selectors.webhook_portal_state(webhook)
    return {
        "webhook": webhook,
        "state": state,
        "state_label": STATE_LABELS[state],
        "state_detail": detail,
        "success_rate": selectors.success_rate(webhook),
    }


@portal_page()
def webhook_list(request, access):
    webhooks = [_row(w) for w in selectors.site_webhooks_with_health(site=access.site)]
    return render(request, "portal/webhook_list.html", {"access": access, "rows": webhooks})


@portal_page()
def webhook_new(request, access):
    if not access.can_change:
        return render(request, "portal/refused.html", {"access": access}, status=403)
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        webhook = form.save(site=access.site)
        if webhook is not None:
            request.session[SECRET_SESSION_KEY] = {"webhook": webhook.id, "secret": webhook.secret}
            return redirect("portal:webhook-secret", webhook_id=webhook.id)
    return render(request, "portal/webhook_new.html", {"access": access, "form": form})


@portal_page()
def webhook_secret(request, access, webhook_id):
    """The secret of a webhook just created or rotated, once: the session keeps it for this one page."""
    webhook = selectors.site_webhook(site=access.site, webhook_id=webhook_id)
    once = request.session.get(SECRET_SESSION_KEY)
    secret = None
    if isinstance(once, dict) and once.get("webhook") == webhook.id:
        secret = once.get("secret")
        del request.session[SECRET_SESSION_KEY]
    return render(
        request,
        "portal/webhook_secret.html",
        {"access": access, "webhook": webhook, "secret": secret, "snippet": verification_snippet(webhook.format)},
    )


@portal_page()
def webhook_detail(request, access, webhook_id):
    webhook = selectors.site_webhook(site=access.site, webhook_id=webhook_id)
    form = WebhookForm(webhook=webhook)
    if request.method == "POST":
        if not access.can_change:
            return render(request, "portal/refused.html", {"access": access}, status=403)
        form = WebhookForm(request.POST, webhook=webhook)
        if form.is_valid() and form.save() is not None:
            messages.success(request, _("Webhook saved."))
            return redirect("portal:webhook", webhook_id=webhook.id)
    filters = DeliveryFilterForm(request.GET or None)
    deliveries = filters.filter(selectors.site_deliveries(site=access.site).filter(webhook=webhook))[:RECENT_DELIVERIES]
    health = selectors.site_webhooks_with_health(site=access.site).get(pk=webhook.pk)
    hours = deliveries_per_hour(now=timezone.now(), webhook=webhook)
    peak = max([sum(h.counts.values()) for h in hours] + [1])
    return render(
        request,
        "portal/webhook_detail.html",
        {
            "access": access,
            "webhook": webhook,
            "row": _row(health),
            "form": form,
            "filters": filters,
            "deliveries": deliveries,
            "hours": [
                {"hour": h, "total": sum(h.counts.values()), "percent": round(100 * sum(h.counts.values()) / peak)} for h in hours
            ],
            "redeliver": RedeliverForm(),
        },
    )


@portal_page(change=True)
@require_POST
def webhook_enabled(request, access, webhook_id):
    """The row's Enabled switch: off pauses (deliveries wait), on resumes them."""
    webhook = selectors.site_webhook(site=access.site, webhook_id=webhook_id)
    enabled = request.POST.get("enabled") == "on"
    subscription_services.webhook_update(webhook=webhook, enabled=enabled)
    messages.success(request, _("Webhook enabled.") if enabled else _("Webhook paused: its deliveries wait until you enable it."))
    if request.POST.get("next") == "detail":
        return redirect("portal:webhook", webhook_id=webhook.id)
    return redirect("portal:webhooks")


@portal_page(change=True)
def webhook_delete(request, access, webhook_id):
    webhook = selectors.site_webhook(site=access.site, webhook_id=webhook_id)
    if request.method == "POST":
        subscription_services.webhook_delete(webhook=webhook)
        messages.success(request, _("Webhook deleted."))
        return redirect("portal:webhooks")
    return render(request, "portal/webhook_delete.html", {"access": access, "webhook": webhook})


@portal_page(change=True)
@require_POST
def webhook_rotate(request, access, webhook_id):
    webhook = selectors.site_webhook(site=access.site, webhook_id=webhook_id)
    webhook = subscription_services.webhook_rotate_secret(webhook=webhook)
    request.session[SECRET_SESSION_KEY] = {"webhook": webhook.id, "secret": webhook.secret}
    return redirect("portal:webhook-secret", webhook_id=webhook.id)


@portal_page(change=True)
@require_POST
def webhook_test(request, access, webhook_id):
    """Send a webhook.test event; the page's script then follows its delivery without reloading."""
    webhook = selectors.site_webhook(site=access.site, webhook_id=webhook_id)
    event = operator.webhook_send_test(webhook=webhook)
    delivery = event.deliveries.filter(webhook=webhook).first()
    wants_json = request.headers.get("Accept", "").startswith("application/json")
    if delivery is None:  # the webhook took no delivery (it is being deleted, say)
        note = _("The test event was not sent: this webhook takes no deliveries right now.")
        if wants_json:
            return JsonResponse({"error": note}, status=409)
        messages.error(request, note)
        return redirect("portal:webhook", webhook_id=webhook.id)
    if wants_json:
        return JsonResponse(
            {"delivery": delivery.id, "outcome_url": reverse("portal:delivery-outcome", args=[delivery.id])}, status=202
        )
    messages.success(request, _("Test event sent."))
    return redirect("portal:delivery", delivery_id=delivery.id)


@portal_page(change=True)
@require_POST
def webhook_redeliver(request, access, webhook_id):
    webhook = selectors.site_webhook(site=access.site, webhook_id=webhook_id)
    form = RedeliverForm(request.POST)
    if form.is_valid():
        count = operator.deliveries_redeliver(webhook=webhook, since=form.cleaned_data["since"])
        messages.success(request, _("%(count)d failed deliveries sent again.") % {"count": count})
    else:
        messages.error(request, " ".join(form.errors.get("since", [])))
    return redirect("portal:webhook", webhook_id=webhook.id)


# --- deliveries and the catalogue -----------------------------------------------------------------
@portal_page()
def delivery_detail(request, access, delivery_id):
    delivery = selectors.site_delivery(site=access.site, delivery_id=delivery_id)
    attempts = list(delivery.attempts.all())
    last = attempts[-1] if attempts else None
    return render(
        request,
        "portal/delivery_detail.html",
        {
            "access": access,
            "delivery": delivery,
            "request_headers": selectors.masked_headers(last.request_headers) if last else None,
            "body": capped(body_as_sent(delivery)),
            "attempts": [
                {
                    "attempt": a,
                    "request_headers": selectors.masked_headers(a.request_headers),
                    "response_headers": a.response_headers,
                    "response_body": capped(a.response_body),
                }
                for a in attempts
            ],
        },
    )


@portal_page()
def delivery_outcome(request, access, delivery_id):
    """Where a delivery stands, for the page's script."""
    delivery = selectors.site_delivery(site=access.site, delivery_id=delivery_id)
    return JsonResponse(
        {
            "status": delivery.status,
            "status_label": str(STATUS_LABELS.get(delivery.status, delivery.status)),
            "status_code": delivery.last_status_code,
            "attempt_count": delivery.attempt_count,
            "error": delivery.last_error,
            "url": reverse("portal:delivery", args=[delivery.id]),
        }
    )


@portal_page(change=True)
@require_POST
def delivery_retry(request, access, delivery_id):
    delivery = selectors.site_delivery(site=access.site, delivery_id=delivery_id)
    try:
        operator.delivery_retry(delivery=delivery)
        messages.success(request, _("Sent again: the new attempt shows here once it is made."))
    except Refused as exc:
        messages.error(request, str(exc))
    return redirect("portal:delivery", delivery_id=delivery.id)


@portal_page()
def event_catalogue(request, access):
    entries = [
        {"type": t, "schema": json.dumps(t.schema, indent=2), "example": json.dumps(t.example, indent=2, ensure_ascii=False)}
        for t in CATALOGUE.values()
    ]
    return render(request, "portal/events.html", {"access": access, "entries": entries})
