"""Publish a known set of events into the fault tests' own database, from a subprocess.

    python -m tests.faults.publish --events 30 [--interval 0.02] --url http://127.0.0.1:9000/a --url …

Creates a site with one webhook per --url (all events), publishes --events `message.created`
events through the real publish service (each in its own transaction, so each is handed to Celery
on commit, --interval seconds apart, so a fault can land while events still come), and prints {"webhooks": {webhook id: url}, "deliveries": {delivery id: webhook id}}.
The environment (DATABASE_URL, CELERY_BROKER_URL) says which database and broker.
"""

import argparse
import json
import os
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between events")
    parser.add_argument("--url", action="append", required=True, help="one webhook per --url")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentbot.settings")
    import django

    django.setup()
    from django.db import transaction

    from core.models import Site
    from deliveries.models import Delivery
    from deliveries.services.publish import event_publish
    from subscriptions.models import Webhook, generate_secret

    site = Site.objects.create(name="fault test")
    webhooks = [Webhook.objects.create(site=site, url=url, events=["*"], secret=generate_secret()) for url in args.url]
    for n in range(args.events):
        data = {"conversation_id": "conv_fault", "message_id": f"msg_{n}", "sender_type": "visitor", "body": f"m{n}"}
        with transaction.atomic():
            event_publish(site=site, event_type="message.created", data=data)
        time.sleep(args.interval)
    deliveries = Delivery.objects.filter(webhook__site=site).values_list("id", "webhook_id")
    json.dump({"webhooks": {w.id: w.url for w in webhooks}, "deliveries": dict(deliveries)}, sys.stdout)


if __name__ == "__main__":
    main()
