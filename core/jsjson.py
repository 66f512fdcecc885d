"""JSON bytes that JavaScript re-serialises unchanged.

Node receivers verify an HMAC over ``JSON.stringify(JSON.parse(body))``, so
:func:`dumps` must already produce exactly the bytes that expression returns.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.jsonlimits import MAX_DEPTH as JSON_MAX_DEPTH
from core.jsonlimits import refuse_constant

__all__ = ["MAX_DEPTH", "MAX_SAFE_INTEGER", "Fragment", "UnsafeJSONError", "check_safe", "dumps", "js_number", "parse"]

MAX_SAFE_INTEGER = _SAFE = 2**53 - 1
# Containers nested deeper than this are refused: every reader of the value (the parser, the
# serialiser, the admin's pages) recurses, and none may run out of stack on data it accepted. The
# same limit as every JSON the service reads from outside (core/jsonlimits.py).
MAX_DEPTH = JSON_MAX_DEPTH
_MAX_INDEX = 2**32 - 2  # largest array index; JS orders only these keys numerically
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
# check_circular=False: _canon walks the value first, so a cycle never reaches the encoder.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)
_BASES = ((str, str.__str__), (int, int.__int__), (float, float.__float__), (dict, dict), (list, list))


class UnsafeJSONError(ValueError):
    """A value JavaScript would silently change (unsafe integer, NaN, Infinity)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True, slots=True)
class Fragment:
    """JSON text that is already JavaScript's serialisation, embedded in a larger value as it is:
    an event's data, rendered once at publish (by :func:`dumps`), inside each format's body, and
    number text json.dumps cannot emit (JS exponent and small-fraction layouts)."""

    text: str


def js_number(x: float) -> str:
    """Format a finite float like JavaScript's Number.prototype.toString."""
    if x == 0:
        return "0"
    # repr gives the same shortest round-trip digits as JS; only the layout differs.
    _, digit_tuple, exp = Decimal(repr(abs(x))).normalize().as_tuple()
    digits, k = "".join(map(str, digit_tuple)), len(digit_tuple)
    n = k + int(exp)  # |x| == 0.<digits> * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        text = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if e >= 0 else "e-") + str(abs(e))
    return "-" + text if x < 0 else text


def _float(x: float) -> float | int | Fragment:
    if not math.isfinite(x):
        raise UnsafeJSONError("non-finite float")
    if x.is_integer():
        if -(2**53) < x < 2**53:
            return int(x)  # exact; JS prints these as plain digits too ("1", and "0" for -0.0)
        return int(js_number(x)) if -1e21 < x < 1e21 else Fragment(js_number(x))
    # For |x| >= 1e-4 (and < 2**52, as x is not integral) repr is fixed-point, exactly like JS.
    return x if abs(x) >= 1e-4 else Fragment(js_number(x))


def _is_index(key: str) -> bool:
    return key.isascii() and key.isdigit() and len(key) <= 10 and (key[0] != "0" or key == "0") and int(key) <= _MAX_INDEX


def _canon(v: Any) -> Any:
    """v with JS key order and JS float layout; unchanged containers are returned as they are."""
    t = type(v)
    if t is str or t is bool or v is None or t is Fragment:
        return v
    if t is int:
        if -_SAFE <= v <= _SAFE:
            return v
        raise UnsafeJSONError("unsafe int")
    if t is float:
        return _float(v)
    if t is dict:
        changed: dict[str, Any] = {}
        indexed = False
        for key, item in v.items():
            if type(key) is not str and not isinstance(key, str):
                raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
            if not indexed and "0" <= key[:1] <= "9":
                indexed = _is_index(key)
            ti = type(item)  # leaves needing no change are tested inline: calls dominate this walk
            if ti is str or item is None or ti is bool or (ti is int and -_SAFE <= item <= _SAFE):
                continue
            if (new := _canon(item)) is not item:
                changed[key] = new
        if indexed:  # JS puts array-index keys first, ascending; the rest keep insertion order
            keys = sorted((k for k in v if "0" <= k[:1] <= "9" and _is_index(k)), key=int)
            first = set(keys)
            keys += [k for k in v if k not in first]
            return {k: changed.get(k, v[k]) for k in keys}
        return {k: changed.get(k, x) for k, x in v.items()} if changed else v
    if t is list:
        out = None
        for pos, item in enumerate(v):
            ti = type(item)
            plain = ti is str or item is None or ti is bool or (ti is int and -_SAFE <= item <= _SAFE)
            new = item if plain else _canon(item)
            if out is None and new is not item:
                out = v[:pos]
            if out is not None:
                out.append(new)
        return v if out is None else out
    for base, convert in _BASES:  # subclasses (enums, OrderedDict): their plain value, as json uses
        if isinstance(v, base):
            return _canon(convert(v))
    raise TypeError(f"Object of type {t.__name__} is not JSON serializable")


def _encode(v: Any, top: bool = True) -> str:
    if top:
        try:
            return _ENCODER.encode(v)
        except TypeError:  # only a Fragment causes this (_canon rejected all else)
            pass
    if isinstance(v, Fragment):
        return v.text
    if isinstance(v, dict):
        return "{" + ",".join(_ENCODER.encode(k) + ":" + _encode(x, False) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(_encode(x, False) for x in v) + "]"
    return _ENCODER.encode(v)


def dumps(value: Any) -> bytes:
    """UTF-8 bytes equal to Node's JSON.stringify(JSON.parse(<these bytes>))."""
    try:
        text = _encode(_canon(value))
    except UnsafeJSONError:
        check_safe(value)  # walk again only on failure, to name the offending path
        raise
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # rare: surrogate code points in some string
        # Pair them up and merge keys that become equal, as JSON.parse would (Python's
        # decoder does the same); JSON.stringify then escapes only the unpaired ones.
        text = _encode(_canon(json.loads(json.dumps(value))))
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")


def _js_int(text: str) -> int | float:
    value = int(text)
    return value if -_SAFE <= value <= _SAFE else float(text)


def parse(raw: bytes | str) -> Any:
    """What JavaScript's JSON.parse reads: an integer beyond ±(2**53 - 1) is the double it rounds
    to, as every JavaScript number is. For text :func:`dumps` made, ``dumps(parse(text)) == text``
    (an integral double of 2**53 or more is printed as digits, which Python alone reads as an int
    no JavaScript receiver would see)."""
    return json.loads(raw, parse_int=_js_int, parse_constant=refuse_constant)


def check_safe(value: Any, path: str = "data", depth: int = 0) -> None:
    """Raise UnsafeJSONError naming the path of the first unsafe integer, non-finite float or
    container nested deeper than MAX_DEPTH."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
        raise UnsafeJSONError(
            f"{path} is {value}, outside JavaScript's safe integer range (±{MAX_SAFE_INTEGER}): "
            "a JavaScript receiver would read a different number. Send it as a string instead.",
            path,
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise UnsafeJSONError(
            f"{path} is {value!r}, which JSON cannot represent (JavaScript would turn it into null). "
            "Send null or a string instead.",
            path,
        )
    if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
        raise UnsafeJSONError(
            f"{path} is nested more than {MAX_DEPTH} levels deep; flatten the data or send the deep part as a string.", path
        )
    if isinstance(value, dict):
        for key, item in value.items():
            key = str(key)
            check_safe(item, f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{json.dumps(key)}]", depth + 1)
    elif isinstance(value, list):
        for pos, item in enumerate(value):
            check_safe(item, f"{path}[{pos}]", depth + 1)
