from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from deliveries.services.operator import webhook_send_test
from subscriptions.models import Webhook


class Command(BaseCommand):
    help = "Send a webhook.test event to one webhook."

    def add_arguments(self, parser):
        parser.add_argument("webhook_id")

    def handle(self, *args, webhook_id, **options):
        webhook = Webhook.objects.select_related("site").filter(pk=webhook_id).first()
        if webhook is None:
            raise CommandError(f"no webhook {webhook_id!r}")
        with transaction.atomic():
            event = webhook_send_test(webhook=webhook)
        delivery = event.deliveries.get()
        self.stdout.write(f"queued {delivery.id} (event {event.id}) to {webhook.displayed_url}")
