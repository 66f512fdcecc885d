"""Connectors: each messaging platform's own part of the inbound side, behind one interface.

A connector parses what its platform sends (in its own views), and tells the pipeline
(inbound/services.py: receive → store → process → answer → reply) what the pipeline cannot know
of a platform: the conversation's channel and the reply destination's addressing of a message,
how a status event applies, whether a reply goes back to the caller or to the integration's
reply destination, and what ends an agent's turn. The pipeline looks a connector up by the
integration's `connector_type` and imports none of them.

A reply destination is where an integration's replies are posted: a Webhook row of its own
(`Integration.reply_webhook`, its `connector` set, in the connector's reply format), so the
delivery engine retries and logs replies as it does a subscriber webhook's deliveries.

Each connector package registers itself, and its reply format with deliveries/formats/__init__.py, when
`connectors_load` imports it: inbound's AppConfig.ready() does, so every process that loads
Django (web, Socket.IO, Celery workers, the delivery engine) knows them all.
"""

from dataclasses import dataclass
from importlib import import_module

from core.vocabulary import Channel
from deliveries.formats import format_register
from deliveries.formats.types import DeliveryFormat

PACKAGES = ("inbound.connectors.chat2desk", "inbound.connectors.webhook_channel", "inbound.connectors.webchat")


@dataclass(frozen=True)
class ReplyDestination:
    """Where an integration's replies are posted: the reply destination's URL, format and secret
    ("" keeps the webhook's own), and why its replies are held back ("" when they are not)."""

    url: str
    format: str
    secret: str = ""
    held: str = ""


class Connector:
    """What the pipeline needs from a connector. The defaults suit a connector whose platform
    sends messages only, each with its `channel` and `addressing` (see inbound/services.py, _accept_message)."""

    type: str = ""  # an inbound.models.ConnectorType value
    # The delivery format its replies are posted with, if they are posted at all.
    reply_format: DeliveryFormat | None = None

    def channel_of(self, payload: dict) -> str:
        """The channel of the conversation a stored message opens."""
        return payload.get("channel") or Channel.OTHER

    def addressing(self, payload: dict) -> dict:
        """What the reply destination needs to reach the visitor, kept in conversation.context[type]."""
        return payload.get("addressing", {})

    def status_apply(self, event) -> tuple:
        """Apply a stored status event (the integration is locked): (the conversation it matched or
        None, the event's status, its outcome)."""
        raise NotImplementedError(f"the {self.type} connector stores no status events")

    def replies_returned(self, integration) -> bool:
        """True: the agent's replies go back to the caller (in its response or socket), not to the
        integration's reply destination."""
        return False

    def reply_destination(self, integration) -> ReplyDestination | str:
        """Where the replies are posted, or why there is nowhere (a string): the integration's
        reply destination is kept in step with it (inbound/integrations.py)."""
        return f"the {self.type} connector posts no replies"

    def turn_ended(self, *, event, conversation, handed_off: bool) -> None:
        """The agent answered (or handed the conversation to a human), in the transaction that
        finishes the event: a connector that tells its platform so does it here."""

    def person_reply(self, *, conversation, message) -> None:
        """A person wrote in the conversation (the API or the admin), in the transaction that
        stored the message, with the conversation locked (domain/hooks.py)."""


CONNECTORS: dict[str, Connector] = {}


def connector_register(connector: Connector) -> Connector:
    """Add a connector, and its reply format to the delivery formats."""
    CONNECTORS[connector.type] = connector
    if connector.reply_format is not None:
        format_register(connector.reply_format)
    return connector


def connector_of(connector_type: str) -> Connector:
    return CONNECTORS[connector_type]


def connectors_load() -> None:
    """Import each connector package, which registers it (idempotent: imports run once)."""
    for name in PACKAGES:
        import_module(name)
