"""Public ids: a type prefix and a time-ordered random part (`dlv_01jd5…`).

The random part is a ULID in lowercase Crockford base32: sortable by creation time, so the newest
rows sit together in the primary-key index, and unguessable.
"""

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


# Every pair of base32 digits, so 26 digits take 13 lookups (ids are made per delivery, in bulk).
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
_SHIFTS = range(120, -1, -10)


def base32(value: int) -> str:
    """A 128-bit value as 26 base32 digits, most significant first."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def ulid() -> str:
    """48 bits of milliseconds and 80 random bits."""
    return base32((int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big"))


def new_id(prefix: str) -> str:
    return f"{prefix}_{ulid()}"


# Named defaults for primary keys: migrations can only reference module-level functions.
def new_site_id() -> str:
    return new_id("site")


def new_webhook_id() -> str:
    return new_id("wh")


def new_event_id() -> str:
    return new_id("evt")


def new_delivery_id() -> str:
    return new_id("dlv")


def new_conversation_id() -> str:
    return new_id("conv")


def new_message_id() -> str:
    return new_id("msg")


def new_ticket_id() -> str:
    return new_id("tkt")


def new_lead_id() -> str:
    return new_id("lead")


def new_appointment_id() -> str:
    return new_id("apt")


def new_integration_id() -> str:
    return new_id("intg")


def new_inbound_id() -> str:
    return new_id("inb")


def new_knowledge_id() -> str:
    return new_id("kb")
