"""Reads about webhooks that the admin and the API share."""

from subscriptions.models import Webhook


def webhook_state(webhook: Webhook) -> str:
    """`active`, `paused` (turned off by a person: deliveries wait) or `disabled` (by the service,
    with `disabled_reason`: deliveries end failed)."""
    if webhook.enabled:
        return "active"
    return "paused" if webhook.paused else "disabled"


def webhook_waiting_count(*, webhook: Webhook) -> int:
    """Deliveries still to be sent to the webhook (for a paused one: those waiting for it)."""
    return webhook.deliveries.filter(status="pending").count()
