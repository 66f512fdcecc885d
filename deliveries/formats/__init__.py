"""Delivery formats: how one event looks on the wire for one kind of receiver, by name.

The formats differ only in data and small functions (body builder, signer, success rule, retry
schedule), so each is a `DeliveryFormat` value (deliveries/formats/types.py, with the types they
render and sign). The package's modules:

- `types.py`: `Envelope`, `Signing`, `DeliveryFormat`, the default schedule and the helpers every
  format shares;
- `signed.py`: the Agentbot webhook format, Chatzuri, the Leads webhook and Standard Webhooks;
- `chat.py` and `chat_message.py`: Slack, Discord and Microsoft Teams, and the message they share;
- `preview.py`: what a webhook's test event looks like, for the admin.

This module is the registry. A connector's reply format is its own (inbound/connectors/) and
registered with `format_register`.
"""

from deliveries.formats import chat, signed
from deliveries.formats.types import DeliveryFormat

FORMATS: dict[str, DeliveryFormat] = {f.name: f for f in (*signed.FORMATS, *chat.FORMATS)}


def format_register(fmt: DeliveryFormat) -> None:
    """Add a format an app above deliveries owns: a connector's reply format (inbound/connectors/),
    registered at inbound's ready(), so every process that loads Django has it."""
    FORMATS[fmt.name] = fmt


def get_format(name: str) -> DeliveryFormat:
    return FORMATS[name]
