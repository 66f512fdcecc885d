"""Public ids: a type prefix and a time-ordered random part (`dlv_01jd5…`).

The random part is a ULID in lowercase Crockford base32: sortable by creation time, so the newest
rows sit together in the primary-key index, and unguessable.
"""

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def ulid() -> str:
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


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
