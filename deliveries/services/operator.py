"""What a person asks of deliveries: retry one now, redeliver a webhook's failures, send a test event."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from core.errors import Refused
from deliveries import handoff
from deliveries.formats import get_format
from deliveries.models import Delivery, Event
from deliveries.preview import webhook_test_data
from deliveries.services.leases import dispatch_until, lease_token
from deliveries.services.publish import event_publish
from subscriptions.event_types import WEBHOOK_TEST
from subscriptions.models import Webhook


class DeliveryBusy(Refused):
    """The delivery is being sent right now."""

    status_code = 409
    code = "conflict"


def _requeue(queryset, *, now: datetime) -> list[str]:
    """Make deliveries due now with a dispatch lease, and queue them once the caller commits."""
    token = lease_token()
    with transaction.atomic():
        ids = list(queryset.select_for_update().values_list("id", flat=True))
        for delivery in Delivery.objects.filter(id__in=ids).select_related("webhook"):
            schedule = get_format(delivery.webhook.format).retry_schedule()
            # A finished delivery gets one more attempt; a waiting one is only brought forward.
            position = delivery.schedule_position
            if delivery.status != Delivery.Status.PENDING:
                position = max(len(schedule) - 1, 0)
            Delivery.objects.filter(pk=delivery.pk).update(
                status=Delivery.Status.PENDING,
                schedule_position=position,
                next_attempt_at=now,
                leased_until=dispatch_until(now),
                lease_token=token,
                updated_at=now,
            )
        if ids:
            transaction.on_commit(lambda: handoff.send(ids, token))
    return ids


def delivery_retry(*, delivery: Delivery) -> Delivery:
    """Send the delivery again now (one more attempt if it had finished)."""
    now = timezone.now()
    if delivery.status == Delivery.Status.PENDING and delivery.leased_until and delivery.leased_until > now:
        raise DeliveryBusy("this delivery is being sent right now; look again in a few seconds")
    _requeue(Delivery.objects.filter(pk=delivery.pk), now=now)
    delivery.refresh_from_db()
    return delivery


def deliveries_redeliver(*, webhook: Webhook, since: datetime) -> int:
    """Send every delivery of `webhook` that failed since `since` once more."""
    failed = Delivery.objects.filter(webhook=webhook, status=Delivery.Status.FAILED, created_at__gte=since)
    return len(_requeue(failed, now=timezone.now()))


def webhook_send_test(*, webhook: Webhook) -> Event:
    event, _ = event_publish(
        site=webhook.site,
        event_type=WEBHOOK_TEST.name,
        data=webhook_test_data(webhook=webhook),
        only_webhook=webhook,
    )
    return event
