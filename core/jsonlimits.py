"""The one reader of JSON that comes from outside: REST bodies (core/api/parsers.py), the
connectors' bodies (inbound/request_body.py) and webchat socket frames.

What it accepts is what the service can store, read back and render everywhere (the API, the admin,
every delivery format): UTF-8 text (RFC 8259) without a byte order mark, nested at most MAX_DEPTH
arrays and objects deep, numbers that are finite doubles (`1e400` is not: Python would read it as
infinity, which JSON, PostgreSQL's jsonb and JavaScript cannot carry), no NaN or Infinity. Anything
else raises JsonRefused with a message a person can act on.
"""

import json
import math

MAX_DEPTH = 64


class JsonRefused(ValueError):
    pass


def refuse_constant(name: str):
    """For `json.loads(parse_constant=...)`: NaN, Infinity and -Infinity are not JSON."""
    raise JsonRefused(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JsonRefused(f"the number {text[:40]} is too large: JSON numbers here must fit a double (about ±1.8e308)")
    return value


def depth(value, stop_after: int | None = None) -> int:
    """How many arrays and objects deep `value` is (a scalar is 0), level by level, without
    recursion; it stops counting once past `stop_after`."""
    deepest, level = 0, [value] if isinstance(value, (dict, list)) else []
    while level and (stop_after is None or deepest <= stop_after):
        deepest += 1
        below: list = []
        for node in level:
            below.extend([c for c in (node.values() if isinstance(node, dict) else node) if isinstance(c, (dict, list))])
        level = below
    return deepest


def depth_check(value, max_depth: int = MAX_DEPTH) -> None:
    """JsonRefused when `value` (already parsed, or built in code) nests deeper than `max_depth`."""
    if depth(value, stop_after=max_depth) > max_depth:
        raise JsonRefused(f"the JSON is nested more than {max_depth} arrays or objects deep")


def loads(raw: bytes | str):
    """Parse `raw` as JSON under the limits above."""
    if isinstance(raw, (bytes, bytearray)):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise JsonRefused("the body is not UTF-8: JSON must be UTF-8 (not UTF-16, UTF-32 or Latin-1)") from None
    else:
        text = raw
    if text.startswith("\ufeff"):
        raise JsonRefused("the body starts with a byte order mark: send UTF-8 JSON without one")
    try:
        value = json.loads(text, parse_constant=refuse_constant, parse_float=_finite_float)
    except JsonRefused:
        raise
    except RecursionError:
        raise JsonRefused(f"the JSON is nested more than {MAX_DEPTH} arrays or objects deep") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4300 digits
        raise JsonRefused(f"the body is not valid JSON: {exc}") from None
    # Cheap first: a text with few brackets cannot be deep.
    if text.count("[") + text.count("{") > MAX_DEPTH:
        depth_check(value)
    return value


class SocketJson:
    """For python-socketio and engine.io (`json=`): frames are read under the same limits."""

    dumps = staticmethod(json.dumps)
    loads = staticmethod(loads)
