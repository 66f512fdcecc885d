"""JSON bytes that JavaScript re-serialises identically.

Node receivers verify the signature over ``JSON.stringify(JSON.parse(body))``,
so :func:`dumps` must already produce exactly that byte sequence.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["MAX_SAFE_INTEGER", "UnsafeJSONError", "check_safe", "dumps", "loads"]

MAX_SAFE_INTEGER = 2**53 - 1
_MAX_INDEX = 2**32 - 2  # largest array index; V8 orders only these keys numerically
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")


class UnsafeJSONError(ValueError):
    """A value JavaScript would silently change (big int, NaN, Infinity)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class _Raw:
    """Number text json.dumps cannot produce (JS exponent/fixed layouts)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _NeedsSlowPath(Exception):
    pass


def _default(obj: object) -> Any:
    # Only reached for _Raw: _canon has already rejected every other type.
    raise _NeedsSlowPath


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False,
    check_circular=False, default=_default,  # _canon would already have recursed forever
)


def js_number(x: float) -> str:
    """Format a finite float as JavaScript's Number.prototype.toString does."""
    if x == 0:
        return "0"
    mantissa, _, exp = repr(abs(x)).partition("e")
    int_part, _, frac = mantissa.partition(".")
    digits = (int_part + frac).lstrip("0")
    # value == 0.<digits> * 10**n
    n = len(int_part) + int(exp or 0) - (len(int_part + frac) - len(digits))
    digits = digits.rstrip("0")
    k = len(digits)
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


def _float(x: float) -> float | int | _Raw:
    if not math.isfinite(x):
        raise UnsafeJSONError("non-finite float")
    if x.is_integer():
        if -2**53 < x < 2**53:
            return int(x)  # exact, and JS prints these as plain digits too ("1", "0" for -0.0)
        return int(js_number(x)) if -1e21 < x < 1e21 else _Raw(js_number(x))
    # repr is fixed-notation with JS's shortest digits for 1e-4 <= |x| < 1e16.
    return x if abs(x) >= 1e-4 else _Raw(js_number(x))


def _index(key: str) -> int | None:
    # Canonical array index: ASCII digits, no leading zero, at most 2**32 - 2.
    if key.isascii() and key.isdigit() and len(key) <= 10 and (key[0] != "0" or key == "0"):
        value = int(key)
        return value if value <= _MAX_INDEX else None
    return None


_BASES = ((str, str.__str__), (int, int.__int__), (float, float.__float__), (dict, dict), (list, list))


def _canon(v: Any) -> Any:
    """Return v with JS key order and JS float layout; unchanged subtrees are reused."""
    t = type(v)
    if t is str or t is bool or v is None:
        return v
    if t is int:
        if -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
            return v
        raise UnsafeJSONError("unsafe int")
    if t is float:
        return _float(v)
    if t is dict:
        changed = False
        indexed: list[tuple[int, str]] = []
        items = []
        for key, item in v.items():
            if type(key) is not str:
                raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
            new = _canon(item)
            changed = changed or new is not item
            items.append((key, new))
            if "0" <= key[:1] <= "9" and (i := _index(key)) is not None:
                indexed.append((i, key))
        if indexed:  # JS puts array-index keys first, ascending; the rest keep insertion order
            new_items = dict(items)
            ordered = {key: new_items.pop(key) for _, key in sorted(indexed)}
            ordered.update(new_items)
            return ordered
        return dict(items) if changed else v
    if t is list:
        out = None
        for pos, item in enumerate(v):
            new = _canon(item)
            if out is None and new is not item:
                out = v[:pos]
            if out is not None:
                out.append(new)
        return v if out is None else out
    for base, convert in _BASES:  # subclasses (enums, OrderedDict): use the plain value, as json does
        if isinstance(v, base):
            return _canon(convert(v))
    raise TypeError(f"Object of type {t.__name__} is not JSON serializable")


def _slow_encode(v: Any) -> str:
    # Only used when a _Raw number is present, which needs literal text in the output.
    if isinstance(v, _Raw):
        return v.text
    if isinstance(v, dict):
        return "{" + ",".join(_ENCODER.encode(k) + ":" + _slow_encode(x) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(_slow_encode(x) for x in v) + "]"
    return _ENCODER.encode(v)


def _text(value: Any) -> str:
    canon = _canon(value)
    try:
        return _ENCODER.encode(canon)
    except _NeedsSlowPath:
        return _slow_encode(canon)


def _join_surrogates(v: Any) -> Any:
    """Combine surrogate pairs as JSON.parse does; duplicate keys keep first position, last value."""
    if isinstance(v, str):
        return v.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    if isinstance(v, dict):
        out = {}
        for key, item in v.items():
            out[_join_surrogates(key) if isinstance(key, str) else key] = _join_surrogates(item)
        return out
    if isinstance(v, list):
        return [_join_surrogates(x) for x in v]
    return v


def dumps(value: Any) -> bytes:
    """UTF-8 bytes equal to Node's JSON.stringify(JSON.parse(<these bytes>))."""
    try:
        text = _text(value)
    except UnsafeJSONError:
        check_safe(value)  # re-walk only on failure, to name the path
        raise
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # rare: surrogates present, take the careful path
        text = _text(_join_surrogates(value))
        return _LONE_SURROGATE.sub(lambda m: "\\u%04x" % ord(m.group()), text).encode("utf-8")


def loads(raw: bytes | str) -> Any:
    """json.loads, refusing numbers JavaScript would change (NaN, Infinity, |int| > 2**53-1)."""
    value = json.loads(raw)
    check_safe(value)
    return value


def check_safe(value: Any, path: str = "data") -> None:
    """Raise UnsafeJSONError naming the path of the first unsafe int or non-finite float."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise UnsafeJSONError(
                f"{path} is {value}, outside JavaScript's safe integer range "
                f"(±{MAX_SAFE_INTEGER}); a JavaScript receiver would read a different number. "
                "Send it as a string instead.", path)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise UnsafeJSONError(
                f"{path} is {value!r}, which JSON cannot represent (JavaScript would turn it "
                "into null). Send null or a string instead.", path)
    elif isinstance(value, dict):
        for key, item in value.items():
            key = str(key)
            check_safe(item, f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{json.dumps(key)}]")
    elif isinstance(value, list):
        for pos, item in enumerate(value):
            check_safe(item, f"{path}[{pos}]")
