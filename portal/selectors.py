"""Reads for the portal's pages, always within one site: the same rows its API key would see."""

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _

from core.models import Site
from deliveries.models import Attempt, Delivery
from deliveries.selectors import webhooks_with_health
from subscriptions.models import Webhook

# Header names whose values are credentials: shown masked on a delivery's page.
SECRET_HEADER_WORDS = ("authorization", "token", "secret", "api-key", "apikey", "cookie", "password")
MASK = "••••••"


def site_webhooks(*, site: Site):
    """The site's subscriber webhooks (an integration's connector webhook is not the portal's)."""
    return Webhook.objects.filter(site=site, connector="")


def site_webhook(*, site: Site, webhook_id: str) -> Webhook:
    return get_object_or_404(site_webhooks(site=site), pk=webhook_id)


def site_webhooks_with_health(*, site: Site):
    return webhooks_with_health(site_webhooks(site=site).order_by("-created_at"), now=timezone.now())


def site_deliveries(*, site: Site):
    return (
        Delivery.objects.filter(event__site=site, webhook__connector="")
        .select_related("event", "webhook")
        .order_by("-created_at")
    )


def site_delivery(*, site: Site, delivery_id: str) -> Delivery:
    attempts = Prefetch("attempts", queryset=Attempt.objects.order_by("number"))
    return get_object_or_404(site_deliveries(site=site).prefetch_related(attempts), pk=delivery_id)


def webhook_portal_state(webhook: Webhook) -> tuple[str, str]:
    """(state, detail) as the portal shows it: active, paused, disabled (with the reason), circuit
    open or failing."""
    if webhook.paused:
        return "paused", _("deliveries wait until it is enabled again")
    if not webhook.enabled:
        return "disabled", webhook.disabled_reason
    if webhook.circuit_open:
        return "circuit_open", _("held after %(n)d failures in a row; probed once a minute") % {"n": webhook.consecutive_failures}
    if webhook.consecutive_failures:
        return "failing", _("%(n)d failures in a row") % {"n": webhook.consecutive_failures}
    return "active", ""


def success_rate(webhook) -> int | None:
    """Per cent of the last 24 hours' finished deliveries that succeeded (annotated by
    webhooks_with_health); None when none finished."""
    finished = getattr(webhook, "finished_24h", 0)
    return round(100 * webhook.succeeded_24h / finished) if finished else None


def masked_headers(headers: dict) -> dict:
    return {
        name: (MASK if any(word in name.lower() for word in SECRET_HEADER_WORDS) else value)
        for name, value in (headers or {}).items()
    }
