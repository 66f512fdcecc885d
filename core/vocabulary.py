"""The agent's words: where a conversation takes place, who wrote a message, the states of a
conversation, its AI session and a ticket.

They are the domain's (domain/models.py stores them), but they are also the published contract:
the event catalogue's schemas (subscriptions/event_types.py) and the delivery formats spell events
with them, and those sit below the domain. So they live here, at the bottom, once, and every layer
names them by member instead of by string. Labels are the values: the admin and the API show the
words as they are sent.
"""

from django.db.models import TextChoices


class Channel(TextChoices):
    WHATSAPP = "whatsapp", "whatsapp"
    TELEGRAM = "telegram", "telegram"
    FACEBOOK = "facebook", "facebook"
    INSTAGRAM = "instagram", "instagram"
    EMAIL = "email", "email"
    WEB = "web", "web"
    # Channels that reach Agentbot only through a connector (Chat2Desk's transports).
    VIBER = "viber", "viber"
    VK = "vk", "vk"
    SMS = "sms", "sms"
    OTHER = "other", "other"


class SenderType(TextChoices):
    VISITOR = "visitor", "visitor"
    AGENT = "agent", "agent"  # a person, from a help desk or the API
    AI = "ai", "ai"


class ConversationStatus(TextChoices):
    OPEN = "open", "open"
    CLOSED = "closed", "closed"


class SessionState(TextChoices):
    """Who answers the visitor: the AI (active), a person (paused: the AI waits), nobody (closed)."""

    ACTIVE = "active", "active"
    PAUSED = "paused", "paused"
    CLOSED = "closed", "closed"


class TicketStatus(TextChoices):
    OPEN = "open", "open"
    PENDING = "pending", "pending"
    SOLVED = "solved", "solved"
    CLOSED = "closed", "closed"


class TicketPriority(TextChoices):
    LOW = "low", "low"
    NORMAL = "normal", "normal"
    HIGH = "high", "high"
    URGENT = "urgent", "urgent"
