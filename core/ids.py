"""Public ids: a type prefix and a time-ordered random part (`dlv_01jd5…`).

The random part is a ULID in lowercase Crockford base32: sortable by creation time, so the newest
rows sit together in the primary-key index, and unguessable.
"""

import os
import re
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


def new_file_id() -> str:
    return new_id("file")


# --- the id grammar, for URLs ------------------------------------------------------------------
# `<prefix>_` and 26 base32 digits; a site id is `site_` and 1 to 60 of [a-z0-9_-] (`site_demo`,
# ids chosen with create_api_key). Anything else in an id's place of a URL (a NUL byte, a quote, a
# wrong prefix, upper case) is a 404 before any view or query runs.
ULID_PATTERN = f"[{_ALPHABET}]{{26}}"
SITE_ID_PATTERN = "site_[a-z0-9_-]{1,60}"
PREFIXES = ("wh", "evt", "dlv", "conv", "msg", "tkt", "lead", "apt", "intg", "inb", "kb", "file")


def id_pattern(prefix: str) -> str:
    return SITE_ID_PATTERN if prefix == "site" else f"{prefix}_{ULID_PATTERN}"


def is_id(value: object, prefix: str) -> bool:
    return isinstance(value, str) and re.fullmatch(id_pattern(prefix), value) is not None


class _IdConverter:
    regex = ""

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


def path_converters() -> dict[str, type]:
    """Django path converters by name: `<wh:webhook_id>` matches only a webhook id, `<site:...>` a
    site id, `<slug:...>` stays Django's own."""
    return {
        prefix: type(f"{prefix.title()}IdConverter", (_IdConverter,), {"regex": id_pattern(prefix)})
        for prefix in (*PREFIXES, "site")
    }
