"""Three records, one job each: the event (what happened, immutable), the delivery (this event to
that webhook: status and next attempt), the attempt (one HTTP exchange)."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from core import jsjson
from core.ids import new_delivery_id, new_event_id
from core.models import Site
from subscriptions.models import Webhook


class JSONTextField(models.JSONField):
    """A JSON value stored as JavaScript's serialisation of it, kept as text: PostgreSQL's `json`
    type (not `jsonb`, which reorders keys and rewrites numbers), plain text elsewhere.

    What is stored is byte for byte the `data` of every body sent, so a delivery sends the
    publisher's key order and the number text a JavaScript receiver reads, and the check made at
    publish (core.jsjson) is the only one: nothing is re-encoded between publish and send.
    """

    def db_type(self, connection):
        return "json" if connection.vendor == "postgresql" else super().db_type(connection)

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        return jsjson.dumps(value).decode("utf-8")

    def select_format(self, compiler, sql, params):
        # psycopg would parse a `json` column with Python's json (no JavaScript number rules);
        # the text comes back as stored and from_db_value reads it.
        if compiler.connection.vendor == "postgresql":
            return f"({sql})::text", params
        return super().select_format(compiler, sql, params)

    def from_db_value(self, value, expression, connection):
        if value is None or not isinstance(value, str):
            return value
        return jsjson.parse(value)


class Event(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_event_id, editable=False)
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=64, db_index=True)
    # JavaScript's serialisation of the publisher's data, rendered once at publish (JSONTextField).
    data = JSONTextField()
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    # Events with the same key reach a webhook ordered by key one at a time, in publish order.
    ordering_key = models.CharField(max_length=200, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["site", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="event_unique_idempotency_key_per_site",
            )
        ]
        indexes = [models.Index(fields=["site", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.type} ({self.id})"


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.CharField(primary_key=True, max_length=40, default=new_delivery_id, editable=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    # Indexed by delivery_webhook_recent_idx, which starts with it: every index costs each insert,
    # and each update of a row that fills its page, one more entry.
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    # How many steps of the retry schedule are used up; the next delay is schedule[position].
    schedule_position = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Whoever holds an unexpired lease owns the next attempt; an expired lease is free to take.
    leased_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Ordered delivery (docs/ordering.md): the key this delivery is ordered by on its webhook
    # (None: unordered; "" for a webhook ordered as a whole) and its place in that order. Only the
    # head of a key (no pending delivery of the same webhook and key with a lower sequence) is
    # taken; a retried delivery gets a new sequence, after those already waiting.
    ordering_key = models.CharField(max_length=200, null=True, blank=True, editable=False)
    sequence = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        indexes = [
            # The head check: the pending deliveries of one webhook's key, in order. Partial, so
            # unordered deliveries cost it nothing.
            models.Index(
                fields=["webhook", "ordering_key", "sequence"],
                condition=Q(status="pending", ordering_key__isnull=False),
                name="delivery_key_queue_idx",
            ),
            # The sweep reads only pending rows in due order: its cost follows what is due, not
            # how many deliveries wait for a later retry.
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="delivery_due_idx"),
            models.Index(fields=["webhook", "-created_at"], name="delivery_webhook_recent_idx"),
            models.Index(fields=["status", "-created_at"], name="delivery_status_recent_idx"),
        ]

    def __str__(self) -> str:
        return self.id


class Attempt(models.Model):
    # Indexed by the (delivery, number) index below, which starts with it.
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts", db_index=False)
    number = models.PositiveIntegerField()
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    request_headers = models.JSONField(default=dict)
    response_headers = models.JSONField(default=dict)
    response_body = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["delivery", "number"]
        indexes = [models.Index(fields=["delivery", "number"]), models.Index(fields=["at"])]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number}"
