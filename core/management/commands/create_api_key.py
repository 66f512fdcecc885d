from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.services import api_key_create, site_get_or_create


class Command(BaseCommand):
    help = "Print a new API key for a site (the site is created if it does not exist yet)."

    def add_arguments(self, parser):
        parser.add_argument("--site", required=True, help="site id, e.g. site_acme")
        parser.add_argument("--name", default="", help="a note to tell keys apart")

    def handle(self, *args, site, name, **options):
        try:
            site_obj, created = site_get_or_create(site_id=site)
        except ValidationError as exc:
            raise CommandError(exc.messages[0]) from exc
        _, plain = api_key_create(site=site_obj, name=name)
        if created:
            self.stderr.write(f"created site {site_obj.id}")
        self.stdout.write(plain)
