"""The portal's own records: who may open a site's portal, and from where it may be framed."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.models import Site


class PortalLink(models.Model):
    """A single-use link a host app asked for with the site's API key. Only the token's hash is
    stored: whoever reads the table cannot open a portal with it."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="portal_links")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    read_only = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return f"portal link {self.pk} ({self.site_id})"


class SiteMembership(models.Model):
    """A person who uses a site's portal by logging in at /portal/login."""

    class Role(models.TextChoices):
        VIEWER = "viewer", _("viewer (reads only)")
        EDITOR = "editor", _("editor (changes webhooks)")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="site_memberships")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "site"], name="portal_membership_one_per_site")]
        ordering = ["site_id"]

    def __str__(self) -> str:
        return f"{self.user} · {self.site_id} ({self.role})"


class PortalSettings(models.Model):
    """A site's portal settings: the origins of the host app pages that may frame it."""

    site = models.OneToOneField(Site, on_delete=models.CASCADE, primary_key=True, related_name="portal_settings")
    allowed_origins = models.JSONField(
        default=list,
        blank=True,
        help_text='Origins that may show the portal in an iframe, as ["https://app.example.com"]. '
        "Empty: no other origin may frame it.",
    )

    class Meta:
        verbose_name = "portal settings"
        verbose_name_plural = "portal settings"

    def __str__(self) -> str:
        return f"portal settings of {self.site_id}"
