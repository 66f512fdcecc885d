"""Inbound channels: integrations (the inbound webhooks document), what they deliver, and the knowledge the agent answers from."""

import secrets
import uuid
from datetime import datetime
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.crypto import EncryptedTextField
from core.ids import new_file_id, new_inbound_id, new_integration_id, new_knowledge_id
from core.models import Site


def generate_inbound_secret() -> str:
    return secrets.token_urlsafe(32)


def generate_jwe_private_key() -> str:
    """A webhook channel instance's JWE key: RSA 2048, PKCS#8 PEM (stored encrypted)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


@lru_cache(maxsize=256)
def _public_pem(private_pem: str) -> str:
    # Loading an RSA private key costs ~150 ms: a list of instances must not pay it per row.
    key = load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


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


# Each connector's settings of an integration, with their defaults: kept in `Integration.settings`
# (JSON), read and written as the integration's attributes (integration.mode, …). The services
# validate them (inbound/integrations.py and the connectors' own checks). The credentials are
# not settings: they stay encrypted columns.
CONNECTOR_SETTINGS: dict[str, dict] = {
    ConnectorType.CHAT2DESK: {
        "api_url": "",  # Chat2Desk's API for the account's instance (global or Europe)
        "remote_webhook_id": "",  # Chat2Desk's id of the webhook registration, once made
        "webhook_registered_at": None,  # when the register-webhook helper made it (ISO 8601 in JSON)
    },
    ConnectorType.WEBCHAT: {
        "allowed_origins": "",  # the origins whose pages may open the widget, one per line
    },
    ConnectorType.WEBHOOK: {  # the webhook channel's document: how its callers authenticate and how it answers them
        "api_version": ApiVersion.V2.value,
        "mode": ChannelMode.SYNC.value,
        "post_url": "",  # asynchronous mode: where each of the agent's messages is posted
        "polling": True,  # v2, synchronous mode: answer with a pollId when the agent is not done
        "jwt_algorithm": JwtAlgorithm.HS256.value,
        "client_id": "",  # the appId of the callers' JWTs
        "public_key": "",  # RS256/RS512: the caller's public key (PEM)
        # The scopes (seed 003): a request without a user identity is refused unless anonymous users
        # may chat (then it gets an anonymous one); an identity the site has never seen is
        # registered unless auto-registration is off (then it is refused).
        "allow_anonymous": False,
        "auto_register": True,
    },
}
SETTING_DEFAULTS = {name: default for names in CONNECTOR_SETTINGS.values() for name, default in names.items()}


def _setting(name: str, label, *, moment: bool = False) -> property:
    """An attribute of the integration kept in its `settings` under `name`: a real property, so
    the model's constructor (and `objects.create`) takes it as a keyword like a field."""

    def get(integration):
        value = integration.settings.get(name, SETTING_DEFAULTS[name])
        return datetime.fromisoformat(value) if moment and value is not None else value

    def put(integration, value):
        if moment and value is not None:
            value = value.isoformat()
        integration.settings = {**integration.settings, name: value}

    get.short_description = label  # the admin's label of the read-only field
    return property(get, put)


class Integration(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_integration_id, editable=False)
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="integrations")
    connector_type = models.CharField(max_length=20, choices=ConnectorType.choices, default=ConnectorType.CHAT2DESK)
    name = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True, help_text="An inactive integration answers its webhook with 403.")
    # The platform signs each webhook with this (HMAC-SHA256 of the raw body).
    webhook_secret = EncryptedTextField(default=generate_inbound_secret, editable=False)
    api_token = EncryptedTextField("API token", blank=True, default="", editable=False)
    # The webhook channel's HS256/HS512 key its callers sign their JWTs with. Shown once, like the webhook secret.
    client_secret = EncryptedTextField(blank=True, default="", editable=False)
    # The webhook channel's RSA key pair for JSON Web Encryption: callers may encrypt their JWT to
    # its public key (shown in the admin and the API); the private key (PEM) never leaves the service.
    jwe_private_key = EncryptedTextField("JWE private key", blank=True, default="", editable=False)
    # The connector's settings (CONNECTOR_SETTINGS), each also an attribute of the integration (below).
    settings = models.JSONField(
        blank=True, default=dict, help_text="The connector's settings (inbound.models.CONNECTOR_SETTINGS)."
    )
    # The reply destination: where the agent's replies go, a Webhook row of its own (retried, logged).
    reply_webhook = models.OneToOneField(
        "subscriptions.Webhook",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="integration",
        editable=False,
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    # Each connector's settings, kept in `settings` (the credentials above stay encrypted columns).
    api_url = _setting("api_url", _("API URL"))
    remote_webhook_id = _setting("remote_webhook_id", _("Chat2Desk's webhook id"))
    webhook_registered_at = _setting("webhook_registered_at", _("webhook registered at"), moment=True)
    allowed_origins = _setting("allowed_origins", _("allowed origins"))
    api_version = _setting("api_version", _("API version"))
    mode = _setting("mode", _("mode"))
    post_url = _setting("post_url", "POST_URL")
    polling = _setting("polling", _("polling"))
    jwt_algorithm = _setting("jwt_algorithm", _("JWT signing algorithm"))
    client_id = _setting("client_id", _("client id"))
    public_key = _setting("public_key", _("public key"))
    allow_anonymous = _setting("allow_anonymous", _("allow anonymous users to chat"))
    auto_register = _setting("auto_register", _("auto register new users"))

    class Meta:
        db_table = "agentbot_integration"  # the table kept its name when the model left the agentbot app
        ordering = ["-created_at"]
        verbose_name = _("integration")
        verbose_name_plural = _("integrations")

    def __str__(self) -> str:
        return f"{self.get_connector_type_display()} {self.name or self.id}"

    @property
    def jwe_public_key(self) -> str:
        """The public half of the JWE key pair (PEM), to which a caller encrypts its token; "" when none."""
        return _public_pem(self.jwe_private_key) if self.jwe_private_key else ""

    jwe_public_key.fget.short_description = _("JWE public key")

    @property
    def webhook_path(self) -> str | None:
        """Where the platform posts; None for the webchat, whose widget talks over Socket.IO."""
        if self.connector_type == ConnectorType.WEBCHAT:
            return None
        if self.connector_type == ConnectorType.WEBHOOK:
            # The webhook channel's document: the site's first instance at the short URL, the others by their id.
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


class UploadedFile(models.Model):
    """A file a webhook channel caller uploaded (seed 003, v2), in one request or in parts; kept in
    the "agentbot_uploads" storage, referenced by its id in a message's attachments."""

    class Status(models.TextChoices):
        UPLOADING = "uploading"  # parts arriving (chunked)
        COMPLETE = "complete"

    id = models.CharField(primary_key=True, max_length=40, default=new_file_id, editable=False)
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="uploaded_files")
    name = models.CharField(max_length=255)
    file_type = models.CharField(max_length=20, help_text="image, audio, video or attachment (seed 003's fileType)")
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UPLOADING)
    storage_name = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("uploaded file")
        verbose_name_plural = _("uploaded files")

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


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
