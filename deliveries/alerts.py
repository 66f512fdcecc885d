"""E-mail to a site's contacts when one of its webhooks is failing, was disabled or recovered.

The notice's event is stored by the fold that changed the webhook (deliveries/endpoint_health.py),
once per state change; when that transaction commits, a task is queued with the event's id, and
the task sends one e-mail for it. The text is the one the chat formats show for the event
(deliveries/chat_message.py)."""

from celery import signature
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from deliveries.chat_message import chat_message
from deliveries.formats import Envelope
from deliveries.models import Event
from subscriptions.event_types import WEBHOOK_DISABLED, WEBHOOK_FAILING, WEBHOOK_RECOVERED

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
