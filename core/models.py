import hashlib
import re
import secrets

from django.db import models
from django.utils import timezone

from core.ids import new_site_id

SITE_ID_RE = re.compile(r"^site_[a-z0-9_-]{1,60}$")
API_KEY_PREFIX = "abk_"
# The site `make run` makes for the demo (its API key, its webchat integration).
DEMO_SITE = "site_demo"


class Site(models.Model):
    """A tenant: an Agentbot installation on one website. Everything else belongs to a site."""

    id = models.CharField(primary_key=True, max_length=70, default=new_site_id)
    name = models.CharField(max_length=200, blank=True)
    # Who hears by e-mail that a webhook is failing, was disabled or recovered.
    contact_emails = models.TextField(blank=True, default="", help_text="E-mail addresses, one per line or separated by commas.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "agentbot_site"  # the table kept its name when the model left the agentbot app
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})" if self.name else self.id

    @property
    def contacts(self) -> list[str]:
        return [a for a in re.split(r"[\s,;]+", self.contact_emails) if a]

    def clean(self) -> None:
        """Each contact is an e-mail address (the admin's form calls this)."""
        from django.core.exceptions import ValidationError
        from django.core.validators import validate_email

        for address in self.contacts:
            try:
                validate_email(address)
            except ValidationError as exc:
                raise ValidationError({"contact_emails": f"{address!r} is not an e-mail address"}) from exc


def hash_api_key(key: str) -> str:
    # API keys are 32 random bytes: a fast hash is enough, a slow KDF would only slow every request.
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKey(models.Model):
    """A bearer key for the REST API. Only its hash is stored; it sees only its site's objects."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=16, editable=False, help_text="The key's first characters, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "agentbot_apikey"  # the table kept its name when the model left the agentbot app
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.site_id})"

    @staticmethod
    def generate() -> str:
        return API_KEY_PREFIX + secrets.token_urlsafe(32)
