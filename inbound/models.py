"""Inbound channels: integrations (seed 000), what they deliver, and the knowledge the agent answers from."""

import secrets
import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.crypto import EncryptedTextField
from core.ids import new_inbound_id, new_integration_id, new_knowledge_id
from core.models import Site


def generate_inbound_secret() -> str:
    return secrets.token_urlsafe(32)


def generate_client_id() -> str:
    """The webhook channel's client id: the `appId` its callers put in their JWTs."""
    return f"cs-{uuid.uuid4()}"


class ConnectorType(models.TextChoices):
    CHAT2DESK = "chat2desk", "Chat2Desk"
    WEBCHAT = "webchat", "Webchat"
    WEBHOOK = "webhook", _("Webhook channel")


class ApiVersion(models.TextChoices):
    V1 = "v1", "v1"
    V2 = "v2", "v2"


class ChannelMode(models.TextChoices):
    SYNC = "sync", _("synchronous: the answer is in the response")
    ASYNC = "async", _("asynchronous: answers are posted to the POST_URL")


class JwtAlgorithm(models.TextChoices):
    HS256 = "HS256", "HS256"
    HS512 = "HS512", "HS512"
    RS256 = "RS256", "RS256"
    RS512 = "RS512", "RS512"


class Integration(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_integration_id, editable=False)
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="integrations")
    connector_type = models.CharField(max_length=20, choices=ConnectorType.choices, default=ConnectorType.CHAT2DESK)
    name = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True, help_text="An inactive integration answers its webhook with 403.")
    # The platform signs each webhook with this (HMAC-SHA256 of the raw body).
    webhook_secret = EncryptedTextField(default=generate_inbound_secret, editable=False)
    api_url = models.URLField(
        "API URL",
        max_length=500,
        blank=True,
        help_text="Chat2Desk's API for your account's instance (global or Europe), as in https://api.chat2desk.com",
    )
    api_token = EncryptedTextField("API token", blank=True, default="", editable=False)
    # Chat2Desk's id of the webhook registration, once the register-webhook helper made one.
    remote_webhook_id = models.CharField(max_length=100, blank=True, editable=False)
    webhook_registered_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Webchat: the pages (origins, as in https://shop.example) whose widget may connect, one per line.
    allowed_origins = models.TextField(
        blank=True,
        help_text=_("Webchat: the origins whose pages may open the widget, one per line (https://shop.example)."),
    )
    # The webhook channel (seed 003): how its callers authenticate and how it answers them.
    api_version = models.CharField(_("API version"), max_length=2, choices=ApiVersion.choices, default=ApiVersion.V2)
    mode = models.CharField(_("mode"), max_length=5, choices=ChannelMode.choices, default=ChannelMode.SYNC)
    post_url = models.URLField(
        "POST_URL",
        max_length=2048,
        blank=True,
        help_text=_("Webhook channel, asynchronous mode: where each of the agent's messages is posted."),
    )
    polling = models.BooleanField(
        _("polling"), default=True, help_text=_("Webhook channel v2, synchronous mode: answer with a pollId when the agent is not done.")
    )
    jwt_algorithm = models.CharField(
        _("JWT signing algorithm"), max_length=5, choices=JwtAlgorithm.choices, default=JwtAlgorithm.HS256
    )
    client_id = models.CharField(_("client id"), max_length=100, blank=True, editable=False)
    # HS256/HS512: the key the caller signs its JWTs with. Shown once, like the webhook secret.
    client_secret = EncryptedTextField(blank=True, default="", editable=False)
    # RS256/RS512: the caller's public key (PEM), which verifies its JWTs.
    public_key = models.TextField(_("public key"), blank=True, help_text=_("RS256/RS512: the client's public key, PEM."))
    # Where the agent's replies go: a connector webhook of the delivery engine (retried, logged).
    reply_webhook = models.OneToOneField(
        "subscriptions.Webhook", null=True, blank=True, on_delete=models.SET_NULL, related_name="integration",
        editable=False,
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "agentbot_integration"  # the table kept its name when the model left the agentbot app
        ordering = ["-created_at"]
        verbose_name = _("integration")
        verbose_name_plural = _("integrations")

    def __str__(self) -> str:
        return f"{self.get_connector_type_display()} {self.name or self.id}"

    @property
    def webhook_path(self) -> str | None:
        """Where the platform posts; None for the webchat, whose widget talks over Socket.IO."""
        if self.connector_type == ConnectorType.WEBCHAT:
            return None
        if self.connector_type == ConnectorType.WEBHOOK:
            # Seed 003: the site's first instance at the short URL, the others by their id.
            first = (
                Integration.objects.filter(site_id=self.site_id, connector_type=ConnectorType.WEBHOOK)
                .order_by("created_at", "id")
                .values_list("id", flat=True)
                .first()
            )
            base = f"/chatbot/hooks/{self.site_id}"
            return base if first == self.id else f"{base}/hookInstance/{self.id}"
        return f"/api/webhook/{self.connector_type}/{self.id}"


class InboundEvent(models.Model):
    """One webhook the platform sent: stored before the 200, processed by a worker, kept as a log."""

    class Kind(models.TextChoices):
        MESSAGE = "message"
        STATUS = "status"
        OTHER = "other"  # acknowledged and ignored

    class Status(models.TextChoices):
        RECEIVED = "received"  # stored, not yet applied
        ACCEPTED = "accepted"  # the visitor's message is in its conversation; the agent has not replied yet
        PROCESSED = "processed"
        IGNORED = "ignored"
        # A status event no open session matched (the ids it looked for are in its outcome): nothing changed.
        UNMATCHED = "unmatched"
        FAILED = "failed"

    id = models.CharField(primary_key=True, max_length=40, default=new_inbound_id, editable=False)
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="inbound_events")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    payload = models.JSONField(help_text="The normalised payload.")
    # The platform's id of the message, when it sends one: a redelivered webhook is stored once.
    external_id = models.CharField(max_length=200, blank=True)
    conversation = models.ForeignKey(
        "domain.Conversation", null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_events"
    )
    outcome = models.TextField(blank=True, help_text="What processing did, or why it failed.")
    # The agent's messages that answered it, oldest first: what a synchronous channel returns.
    replies = models.JSONField(default=list, blank=True, editable=False)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    received_at = models.DateTimeField(default=timezone.now, editable=False)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "agentbot_inboundevent"  # the table kept its name when the model left the agentbot app
        ordering = ["-received_at"]
        verbose_name = _("inbound event")
        verbose_name_plural = _("inbound events")
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "external_id"],
                condition=~models.Q(external_id=""),
                name="inbound_event_once_per_external_id",
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["received", "accepted"]),
                name="inbound_event_pending_idx",
            ),
            models.Index(fields=["integration", "-received_at"], name="inbound_event_recent_idx"),
            models.Index(fields=["received_at"], name="inbound_event_age_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.status} ({self.id})"


# Statuses of an inbound event a worker still has to finish (the pending index's condition).
INBOUND_PENDING = [InboundEvent.Status.RECEIVED, InboundEvent.Status.ACCEPTED]


class KnowledgeEntry(models.Model):
    """A question the agent can answer on a site, and its answer."""

    id = models.CharField(primary_key=True, max_length=40, default=new_knowledge_id, editable=False)
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="knowledge")
    question = models.CharField(max_length=500)
    answer = models.TextField()
    keywords = models.CharField(
        max_length=500, blank=True, help_text="More words that should lead to this answer, separated by commas."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "agentbot_knowledgeentry"  # the table kept its name when the model left the agentbot app
        ordering = ["question"]
        verbose_name = _("knowledge base entry")
        verbose_name_plural = _("knowledge base")

    def __str__(self) -> str:
        return self.question
