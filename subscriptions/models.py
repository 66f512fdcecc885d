import base64
import secrets
from datetime import datetime
from urllib.parse import urlsplit

from django.db import models
from django.utils import timezone

from core.crypto import EncryptedTextField
from core.ids import new_webhook_id
from core.models import Site
from subscriptions.event_types import ALL_EVENTS, MESSAGE_CREATED, MESSAGE_RECEIVED, NAMED_ONLY_EVENTS, WEBHOOK_TEST
from subscriptions.url_policy import is_broker_url

SECRET_PREFIX = "whsec_"


def generate_secret() -> str:
    """`whsec_` + base64 of 24 random bytes: usable as-is by the hex formats (UTF-8 bytes of the
    string are the HMAC key) and by Standard Webhooks receivers (base64 part is the key)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def mask_secret(secret: str) -> str:
    return f"{SECRET_PREFIX}…{secret[-4:]}" if secret else ""


URL_HINT_TAIL = 4


def url_hint(url: str) -> str:
    """`scheme://host/…abcd`: enough of a URL to recognise it, not to use it. For a URL that is
    itself a credential (a chat platform's incoming webhook, whose path is the token) or that
    carries a password (`amqp://user:password@host/vhost`): no user, no password, of the path and
    query only their last characters."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a URL: nothing of it is shown
        return "…"
    host = parts.hostname or ""
    if not (parts.scheme and host):
        return "…"
    if ":" in host:
        host = f"[{host}]"
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    tail = rest[-URL_HINT_TAIL:] if len(rest) > 2 * URL_HINT_TAIL else ""
    return f"{parts.scheme}://{host}{port}/…{tail}"


def url_is_credential(url: str, format: str) -> bool:
    """Whether the URL must not be shown again after it was given: its format's URLs are
    credentials, or it carries a password."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return format in CREDENTIAL_URL_FORMATS or bool(password)


def subscribed(events: list[str], event_type: str, data=None) -> bool:
    """Whether a webhook subscribed to `events` gets an event of `event_type` with `data` (the test
    ping goes to any; `message.received` is a visitor's `message.created`; `delivery.exhausted` only
    to webhooks that name it)."""
    if event_type in NAMED_ONLY_EVENTS:
        return event_type in events
    if event_type == WEBHOOK_TEST.name or ALL_EVENTS in events or event_type in events:
        return True
    return (
        MESSAGE_RECEIVED in events
        and event_type == MESSAGE_CREATED.name
        and isinstance(data, dict)
        and data.get("sender_type") == "visitor"
    )


class WebhookFormat(models.TextChoices):
    AGENTBOT = "agentbot", "Agentbot (X-Agentbot-Signature)"
    CHATZURI = "chatzuri", "Chatzuri (x-chatzuri-signature)"
    LEADS = "leads", "Leads CRM (X-Webhook-Signature)"
    STANDARD = "standard", "Standard Webhooks"
    CHAT2DESK = "chat2desk", "Chat2Desk API (an integration's replies)"
    WEBHOOK_CHANNEL = "webhook_channel", "Webhook channel POST_URL (an integration's replies)"
    SLACK = "slack", "Slack incoming webhook (Block Kit message)"
    DISCORD = "discord", "Discord webhook (message with an embed)"
    TEAMS = "teams", "Microsoft Teams Workflows webhook (Adaptive Card)"


# What a subscriber can choose; the others belong to the connector webhooks of integrations.
SUBSCRIBER_FORMATS = [
    WebhookFormat.AGENTBOT,
    WebhookFormat.CHATZURI,
    WebhookFormat.LEADS,
    WebhookFormat.STANDARD,
    WebhookFormat.SLACK,
    WebhookFormat.DISCORD,
    WebhookFormat.TEAMS,
]
# What a broker webhook can carry: the signed formats whose success is the receiver taking it (a
# broker's confirm stands for the 2xx). The leads format needs the CRM's answer body and the chat
# formats a chat platform's API, neither of which a broker gives.
BROKER_FORMATS = [WebhookFormat.AGENTBOT, WebhookFormat.CHATZURI, WebhookFormat.STANDARD]
# Formats whose URL is the credential (whoever has it can post to the channel): unsigned, and the
# URL is shown only as a hint (url_hint) once given.
CREDENTIAL_URL_FORMATS = frozenset({WebhookFormat.SLACK, WebhookFormat.DISCORD, WebhookFormat.TEAMS})


class WebhookOrdering(models.TextChoices):
    NONE = "none", "None: every delivery on its own, concurrently (fastest)"
    KEY = "key", "Per ordering key: one at a time per key, in publish order"
    WEBHOOK = "webhook", "Whole webhook: one at a time, in publish order"


def ordering_key_for(ordering: str, event_key: str | None) -> str | None:
    """The key a webhook with `ordering` orders its delivery of an event with `event_key` by
    (None: unordered). A webhook ordered as a whole puts every delivery on one key, ""."""
    if ordering == WebhookOrdering.WEBHOOK:
        return ""
    if ordering == WebhookOrdering.KEY:
        return event_key
    return None


class Webhook(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_webhook_id, editable=False)
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="webhooks")
    # An http(s) URL, or a broker's amqp(s) URL whose password is written `****` (MASKED_PASSWORD):
    # the password itself is `broker_password`, encrypted, put back only to connect.
    url = models.CharField(max_length=2048)
    events = models.JSONField(default=list, help_text='Event types to send, or ["*"] for all.')
    format = models.CharField(max_length=20, choices=WebhookFormat.choices, default=WebhookFormat.AGENTBOT)
    enabled = models.BooleanField(default=True)
    # How its deliveries are ordered (docs/ordering.md): none, per event ordering key, or all of them.
    ordering = models.CharField(max_length=10, choices=WebhookOrdering.choices, default=WebhookOrdering.NONE)
    description = models.CharField(max_length=500, blank=True)
    # A broker webhook's exchange ("" is the broker's default exchange, which routes by queue
    # name) and routing key (blank: the event's type). Empty for an HTTP webhook.
    exchange = models.CharField(max_length=255, blank=True, default="")
    routing_key = models.CharField(max_length=255, blank=True, default="")
    broker_password = EncryptedTextField(blank=True, default="", editable=False)
    secret = EncryptedTextField(editable=False)
    previous_secret = EncryptedTextField(blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=500, blank=True, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Endpoint health, kept up to date by the delivery engine (deliveries/engine/endpoint_health.py).
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    circuit_opened_at = models.DateTimeField(null=True, blank=True, editable=False)
    # While the circuit is open, the next probe attempt is let through at this time.
    circuit_probe_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Empty for a subscriber's webhook. Otherwise the endpoint an inbound integration replies
    # through (its connector type): managed with the integration, never sent subscribed events.
    connector = models.CharField(max_length=20, blank=True, default="", editable=False)
    # Delivery controls (subscriptions/controls.py): headers added to every request; how the
    # request authenticates (`auth`: the type and its public parts, `auth_secret`: the password,
    # token or client secret); a client certificate for mutual TLS and a CA to trust; which events
    # of the subscribed types it gets (`filter`, subscriptions/filters.py); how fast it is sent to.
    headers = models.JSONField(default=dict, blank=True)
    auth = models.JSONField(default=dict, blank=True)
    auth_secret = EncryptedTextField(blank=True, default="", editable=False)
    tls_client_cert = models.TextField(blank=True, default="", editable=False)
    tls_client_key = EncryptedTextField(blank=True, default="", editable=False)
    tls_ca_cert = models.TextField(blank=True, default="", editable=False)
    filter = models.JSONField(null=True, blank=True)
    rate_limit = models.JSONField(null=True, blank=True)
    # The rate limit's schedule (GCRA's theoretical arrival time): the next send may not start
    # before it; later than now means the webhook is being held back.
    rate_limited_until = models.DateTimeField(null=True, blank=True, editable=False)
    # The last warning announced for the current failing streak (webhook.failing at 50, 75, 90
    # per cent of the way to being disabled); 0 when healthy or nothing was said yet.
    failing_level = models.PositiveSmallIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["site", "enabled"])]

    def __str__(self) -> str:
        return f"{self.displayed_url} ({self.id})"

    def url_hint(self) -> str:
        return url_hint(self.url)

    @property
    def url_is_credential(self) -> bool:
        return url_is_credential(self.url, self.format)

    @property
    def is_broker(self) -> bool:
        """Published to a message broker (an amqp(s):// URL) rather than POSTed."""
        return is_broker_url(self.url)

    @property
    def displayed_url(self) -> str:
        """The URL as the admin, the API and events show it: whole, or a hint when it is a credential."""
        return self.url_hint() if self.url_is_credential else self.url

    @staticmethod
    def paused_q(prefix: str = "") -> models.Q:
        """`paused` as a filter, on webhooks or through a relation (`prefix="webhook__"`)."""
        return models.Q(**{f"{prefix}enabled": False, f"{prefix}disabled_reason": ""})

    @property
    def paused(self) -> bool:
        """Turned off by a person (enabled off, no reason of the service's): its deliveries wait,
        pending, and new events still get theirs, until it is enabled again. Off with a reason is
        *disabled by the service* (410 Gone, failing for days): its deliveries end failed."""
        return not self.enabled and not self.disabled_reason

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets to sign with: the current one first, then the old one while in grace."""
        found = [self.secret]
        if self.previous_secret and self.previous_secret_expires_at and self.previous_secret_expires_at > now:
            found.append(self.previous_secret)
        return found

    @property
    def circuit_open(self) -> bool:
        return self.circuit_opened_at is not None

    @property
    def masked_secret(self) -> str:
        # A connector webhook's secret is an integration's API token: not a `whsec_`, no hint.
        return "" if self.connector else mask_secret(self.secret)
