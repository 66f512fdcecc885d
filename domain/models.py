"""The agent's records. They belong to a site; their changes become events (see services)."""

from django.db import models
from django.utils import timezone

from core.ids import (
    new_appointment_id,
    new_conversation_id,
    new_lead_id,
    new_message_id,
    new_ticket_id,
)
from core.models import Site
from core.vocabulary import Channel, ConversationStatus, SenderType, SessionState, TicketPriority, TicketStatus


class Conversation(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_conversation_id, editable=False)
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="conversations")
    # The conversation's number on its site, counted from 1: the leads format's SessionID.
    number = models.PositiveIntegerField(editable=False)
    channel = models.CharField(max_length=20, choices=Channel.choices)
    status = models.CharField(max_length=10, choices=ConversationStatus.choices, default=ConversationStatus.OPEN)
    visitor_name = models.CharField(max_length=200, blank=True)
    visitor_email = models.EmailField(max_length=254, blank=True)
    visitor_phone = models.CharField(max_length=40, blank=True)
    page_url = models.CharField(max_length=2048, blank=True)
    source = models.JSONField(default=dict, blank=True, help_text="The channel's identifiers of the visitor.")
    needs_human_at = models.DateTimeField(null=True, blank=True)
    handoff_reason = models.TextField(blank=True)
    # The AI session: `active` (the agent answers) → `paused` (a human has the dialog; the agent is
    # silent) → `closed` (with the conversation). docs/inbound/index.md, "Sessions", has the state machine.
    session = models.CharField(max_length=10, choices=SessionState.choices, default=SessionState.ACTIVE)
    # Conversations that arrive through an inbound integration: which one, and the visitor's id there.
    integration = models.ForeignKey(
        "inbound.Integration", null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    external_id = models.CharField(max_length=200, blank=True, help_text="The visitor's id at the integration.")
    context = models.JSONField(
        default=dict, blank=True, help_text="Shared conversation context: the channel's addressing, transfers."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "agentbot_conversation"  # the table kept its name when the model left the agentbot app
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["site", "number"], name="conversation_number_per_site")]
        indexes = [
            models.Index(fields=["site", "-created_at"], name="conversation_site_recent_idx"),
            models.Index(
                fields=["integration", "external_id"],
                condition=models.Q(status=ConversationStatus.OPEN),
                name="conversation_open_visitor_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} #{self.number} ({self.id})"

    @property
    def is_open(self) -> bool:
        return self.status == ConversationStatus.OPEN


class Message(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_message_id, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    sender_type = models.CharField(max_length=10, choices=SenderType.choices)
    body = models.TextField()
    # What the channel sent along with the message (tags, attachments); not part of its event.
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "agentbot_message"  # the table kept its name when the model left the agentbot app
        ordering = ["conversation", "created_at"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="message_conversation_idx")]

    def __str__(self) -> str:
        return f"{self.sender_type}: {self.body[:40]} ({self.id})"


class Ticket(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_ticket_id, editable=False)
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="tickets")
    conversation = models.ForeignKey(Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets")
    subject = models.CharField(max_length=300)
    status = models.CharField(max_length=10, choices=TicketStatus.choices, default=TicketStatus.OPEN)
    priority = models.CharField(max_length=10, choices=TicketPriority.choices, default=TicketPriority.NORMAL)
    assignee = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "agentbot_ticket"  # the table kept its name when the model left the agentbot app
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["site", "-created_at"], name="ticket_site_recent_idx")]

    def __str__(self) -> str:
        return f"{self.subject} ({self.id})"


class ContactRecord(models.Model):
    """What a visitor leaves behind: a lead (contact details) or an appointment."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="%(class)ss")
    conversation = models.ForeignKey(Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="%(class)ss")
    first_name = models.CharField(max_length=200, blank=True)
    last_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    content = models.TextField(blank=True, help_text="Remarks, or what the appointment is about.")
    uri = models.CharField(max_length=2048, blank=True, help_text="Where the visitor submitted it.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    def __str__(self) -> str:
        name = " ".join(part for part in (self.first_name, self.last_name) if part)
        return f"{name or self.email or self.phone} ({self.id})"


class Lead(ContactRecord):
    id = models.CharField(primary_key=True, max_length=40, default=new_lead_id, editable=False)

    class Meta(ContactRecord.Meta):
        db_table = "agentbot_lead"  # the table kept its name when the model left the agentbot app
        indexes = [models.Index(fields=["site", "-created_at"], name="lead_site_recent_idx")]


class Appointment(ContactRecord):
    id = models.CharField(primary_key=True, max_length=40, default=new_appointment_id, editable=False)

    class Meta(ContactRecord.Meta):
        db_table = "agentbot_appointment"  # the table kept its name when the model left the agentbot app
        indexes = [models.Index(fields=["site", "-created_at"], name="appointment_site_recent_idx")]
