"""Reads about webhooks that the admin, the API and the metrics share."""

from django.db.models import Count, Q
from django.utils import timezone

from subscriptions.models import CREDENTIAL_URL_FORMATS, Webhook


def webhook_state(webhook: Webhook) -> str:
    """`active`, `paused` (turned off by a person: deliveries wait) or `disabled` (by the service,
    with `disabled_reason`: deliveries end failed)."""
    if webhook.enabled:
        return "active"
    return "paused" if webhook.paused else "disabled"


def webhook_waiting_count(*, webhook: Webhook) -> int:
    """Deliveries still to be sent to the webhook (for a paused one: those waiting for it)."""
    return webhook.deliveries.filter(status="pending").count()


def webhooks_by_url_part(part: str):
    """Webhooks whose URL contains `part` (any case), for the admin's search boxes. A URL that is
    its own credential (a chat platform's incoming webhook) is never searched: matching pieces of
    it one search at a time would read it out, which its hint is there to prevent."""
    return Webhook.objects.filter(url__icontains=part).exclude(format__in=CREDENTIAL_URL_FORMATS)


# A webhook's health states; they overlap (a failing webhook is also enabled).
WEBHOOK_STATES = {
    "enabled": Q(enabled=True),
    "healthy": Q(enabled=True, consecutive_failures=0),
    "failing": Q(consecutive_failures__gt=0),  # at least one failure since the last success
    "circuit_open": Q(circuit_opened_at__isnull=False),
    "disabled_by_operator": Webhook.paused_q(),  # paused
    "disabled_by_service": Q(enabled=False) & ~Q(disabled_reason=""),
}


def webhook_states() -> dict[str, int]:
    """How many webhooks are in each of WEBHOOK_STATES, in one pass over the webhook table."""
    # Aliases differ from field names: Django refuses an aggregate named like a field it filters on.
    row = Webhook.objects.aggregate(**{f"n_{state}": Count("id", filter=q) for state, q in WEBHOOK_STATES.items()})
    return {state: row[f"n_{state}"] for state in WEBHOOK_STATES}


def webhooks_failing(*, limit: int = 20):
    """Webhooks in trouble, worst first: an open circuit, a failure streak, or disabled by the service."""
    trouble = WEBHOOK_STATES["failing"] | WEBHOOK_STATES["circuit_open"] | WEBHOOK_STATES["disabled_by_service"]
    return Webhook.objects.filter(trouble).select_related("site").order_by("-consecutive_failures", "-failing_since")[:limit]


def webhook_rate_held_until(*, webhook: Webhook):
    """Until when a rate-limited webhook's deliveries are spread out (the limit is holding some
    back); None when it is not holding any."""
    until = webhook.rate_limited_until
    return until if webhook.rate_limit and until and until > timezone.now() else None
