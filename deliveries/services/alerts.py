"""What the service tells a site about its own deliveries beyond the notices of endpoint health:
`delivery.exhausted` when a delivery ends failed, and an e-mail to the site's contacts when one of
its webhooks is failing, was disabled or recovered.

The notice's event is stored by the fold that changed the webhook (deliveries/engine/endpoint_health.py),
once per state change; when that transaction commits, a task is queued with the event's id, and
the task sends one e-mail for it. The text is the one the chat formats show for the event
(deliveries/formats/chat_message.py)."""

from celery import signature
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from core.models import Site
from deliveries.formats.chat_message import chat_message
from deliveries.formats.types import Envelope
from deliveries.models import Event
from deliveries.services.publish import event_publish
from subscriptions.event_types import (
    DELIVERY_EXHAUSTED,
    OPERATIONAL_EVENTS,
    WEBHOOK_DISABLED,
    WEBHOOK_FAILING,
    WEBHOOK_RECOVERED,
)
from subscriptions.models import Webhook

EMAILED_EVENTS = frozenset({WEBHOOK_FAILING.name, WEBHOOK_DISABLED.name, WEBHOOK_RECOVERED.name})
ALERT_TASK = "deliveries.tasks.webhook_alert_email"


def alert_email_queue(*, event_id: str, event_type: str) -> None:
    """After the caller's transaction commits, queue the e-mail for this notice (by task name)."""
    if event_type in EMAILED_EVENTS:
        transaction.on_commit(lambda: alert_email_enqueue(event_id))


def alert_email_enqueue(event_id: str) -> None:
    signature(ALERT_TASK, args=[event_id]).apply_async()


def webhook_alert_email(*, event_id: str) -> int:
    """Send the notice's e-mail to its site's contacts; returns how many messages went out (0 or 1)."""
    event = Event.objects.select_related("site").filter(pk=event_id).first()
    if event is None or event.type not in EMAILED_EVENTS or not event.site.contacts:
        return 0
    message = chat_message(Envelope.of(event.id, event.type, event.site_id, event.created_at, event.data))
    lines = [message.summary, ""]
    lines += [f"{name}: {value}" for name, value in message.fields]
    if message.text:
        lines += ["", message.text]
    if message.link:
        lines += ["", f"{message.link.label}: {message.link.url}"]
    lines += ["", f"Site {event.site_id} · event {event.id} ({event.type})"]
    return send_mail(
        subject=f"[Agentbot] {message.summary}"[:200],
        message="\n".join(lines),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=event.site.contacts,
    )


def deliveries_exhausted_publish(*, ended: list) -> None:
    """A `delivery.exhausted` for each delivery that ended failed (`ended`: the engine's job and
    the stored outcome of each), on its event's site; none for the deliveries of the service's own
    notices (a failing owner's webhook would feed on them)."""
    ended = [(job, outcome) for job, outcome in ended if job.event_type not in OPERATIONAL_EVENTS]
    if not ended:
        return
    sites = dict(Event.objects.filter(pk__in={job.event_id for job, _ in ended}).values_list("id", "site_id"))
    webhooks = Webhook.objects.filter(pk__in={job.webhook_id for job, _ in ended}).only("id", "url", "format")
    urls = {webhook.id: webhook.displayed_url for webhook in webhooks}  # a credential URL only as its hint
    for job, outcome in ended:
        if job.event_id not in sites or job.webhook_id not in urls:
            continue  # deleted meanwhile
        with transaction.atomic():
            event_publish(
                site=Site(pk=sites[job.event_id]),
                event_type=DELIVERY_EXHAUSTED.name,
                data={
                    "delivery_id": job.delivery_id,
                    "event_id": job.event_id,
                    "event_type": job.event_type,
                    "webhook_id": job.webhook_id,
                    "url": urls[job.webhook_id],
                    "attempts": outcome.number,
                    "last_status_code": outcome.status_code,
                    "last_error": outcome.error,
                },
            )
