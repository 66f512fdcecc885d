from datetime import UTC

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware

from deliveries.services.operator import deliveries_redeliver
from subscriptions.models import Webhook


class Command(BaseCommand):
    help = "Send once more every delivery of a webhook that failed since a time."

    def add_arguments(self, parser):
        parser.add_argument("--webhook", required=True, help="webhook id (wh_…)")
        parser.add_argument("--since", required=True, help="ISO 8601 time, e.g. 2026-11-24T00:00:00Z (UTC when no zone)")

    def handle(self, *args, webhook, since, **options):
        moment = parse_datetime(since.replace("Z", "+00:00"))
        if moment is None:
            raise CommandError(f"--since must be an ISO 8601 time such as 2026-11-24T00:00:00Z, got {since!r}")
        if is_naive(moment):
            moment = make_aware(moment, UTC)
        hook = Webhook.objects.filter(pk=webhook).first()
        if hook is None:
            raise CommandError(f"no webhook {webhook!r}")
        count = deliveries_redeliver(webhook=hook, since=moment)
        self.stdout.write(f"re-queued {count} failed deliveries of {hook.id} since {moment.isoformat()}")
