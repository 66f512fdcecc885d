"""What a person asks of deliveries: retry one now, redeliver a webhook's failures, skip one that
holds up its ordering key, send a test event."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from core.errors import Refused
from deliveries import bulk
from deliveries.engine import outbox
from deliveries.engine.outbox import dispatch_until, lease_token
from deliveries.formats import get_format
from deliveries.formats.preview import webhook_test_data
from deliveries.models import Delivery, Event
from deliveries.services.publish import event_publish
from deliveries.services.send import deliveries_next
from subscriptions.event_types import WEBHOOK_TEST
from subscriptions.models import Webhook


class DeliveryBusy(Refused):
    """The delivery is being sent right now."""

    status_code = 409
    code = "conflict"


def _requeue(queryset, *, now: datetime) -> list[str]:
    """Make deliveries due now with a dispatch lease, and queue them once the caller commits.

    A finished delivery of an ordered webhook goes back at the end of its key's order, after the
    deliveries already waiting on it (docs/ordering.md): it does not jump ahead of what its
    receiver is being sent now, and the deliveries that were released when it ended keep going."""
    token = lease_token()
    with transaction.atomic():
        ids = list(queryset.select_for_update().values_list("id", flat=True))
        deliveries = list(Delivery.objects.filter(id__in=ids).select_related("webhook").order_by("sequence", "id"))
        finished_ordered = [d for d in deliveries if d.status != Delivery.Status.PENDING and d.ordering_key is not None]
        bulk.keys_lock(keys=sorted({f"{d.webhook_id}\x1f{d.ordering_key}" for d in finished_ordered}))
        places = iter(bulk.sequences(count=len(finished_ordered)))
        for delivery in deliveries:
            schedule = get_format(delivery.webhook.format).retry_schedule()
            # A finished delivery gets one more attempt; a waiting one is only brought forward.
            position, fields = delivery.schedule_position, {}
            if delivery.status != Delivery.Status.PENDING:
                position = max(len(schedule) - 1, 0)
                if delivery.ordering_key is not None:
                    fields["sequence"] = next(places)
            Delivery.objects.filter(pk=delivery.pk).update(
                status=Delivery.Status.PENDING,
                schedule_position=position,
                next_attempt_at=now,
                leased_until=dispatch_until(now),
                lease_token=token,
                updated_at=now,
                **fields,
            )
        if ids:
            transaction.on_commit(lambda: outbox.enqueue(ids, token))
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


def delivery_skip(*, delivery: Delivery, by: str) -> Delivery:
    """End a pending delivery as failed, "skipped by <by>", without sending it: the next delivery
    of its ordering key goes at once. One being sent right now cannot be skipped (409)."""
    now = timezone.now()
    with transaction.atomic():
        current = Delivery.objects.select_for_update().get(pk=delivery.pk)
        if current.status != Delivery.Status.PENDING:
            raise DeliveryBusy(f"only a pending delivery can be skipped; this one has {current.status}")
        if current.leased_until and current.leased_until > now:
            raise DeliveryBusy("this delivery is being sent right now; look again in a few seconds")
        Delivery.objects.filter(pk=current.pk).update(
            status=Delivery.Status.FAILED,
            next_attempt_at=None,
            leased_until=None,
            lease_token=None,
            last_error=f"skipped by {by}",
            updated_at=now,
        )
    if current.ordering_key is not None:
        transaction.on_commit(lambda: deliveries_next(ids=[current.pk]))
    delivery.refresh_from_db()
    return delivery


def webhook_send_test(*, webhook: Webhook) -> Event:
    event, _ = event_publish(
        site=webhook.site,
        event_type=WEBHOOK_TEST.name,
        data=webhook_test_data(webhook=webhook),
        only_webhook=webhook,
    )
    return event
