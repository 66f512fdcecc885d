"""What a connector makes of a request: a message or status event to store, or one to ignore."""

from dataclasses import dataclass, field


class PayloadError(ValueError):
    """The payload cannot be processed; the message names the field."""


@dataclass(frozen=True)
class Parsed:
    kind: str  # "message", "status" or "ignored"
    payload: dict = field(default_factory=dict)  # a message's keys: see services._accept_message
    external_id: str = ""
    reason: str = ""
