"""A webhook's filter: a JSON condition on an event's data, checked at publish.

The language follows Convoy's and Outpost's: an object whose keys are field paths and whose
values are what the field must be, every key holding (an implicit AND).

    {"channel": {"$in": ["whatsapp", "telegram"]}}
    {"ticket": {"priority": "high"}}                    (nested object: a path, ticket.priority)
    {"ticket.priority": "high", "ticket.status": {"$neq": "closed"}}
    {"$or": [{"amount": {"$gte": 100}}, {"vip": true}]}
    {"ticket": {"$or": [{"priority": "high"}, {"status": "open"}]}}   (under ticket)

- a plain value (string, number, boolean, null, array) is equality, by JSON value: 1 equals 1.0,
  true does not equal 1 (an object as a field's value is a nested path; `$eq` compares with one);
- `$eq`, `$neq`, `$in`, `$nin` (a list), `$exists` (true or false), `$gt`, `$gte`, `$lt`, `$lte`
  (a number, or a string compared as text, as ISO dates compare);
- `$and` and `$or` take a non-empty list of filters;
- a path is names joined by dots; a name of digits indexes into an array.

A field that is missing matches only `$exists: false`, `$neq` and `$nin`. A comparison between
values of different kinds (a number and a string) does not match.
"""

import json
import math
from collections.abc import Callable
from functools import lru_cache

from django.core.exceptions import ValidationError

FIELD_OPERATORS = ("$eq", "$neq", "$in", "$nin", "$exists", "$gt", "$gte", "$lt", "$lte")
LOGICAL_OPERATORS = ("$and", "$or")
MAX_FILTER_BYTES = 8192
MAX_DEPTH = 12
MAX_LIST = 256

_MISSING = object()


class FilterError(ValueError):
    """The filter is not one this language can read; `path` names the bad part."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


# --- values --------------------------------------------------------------------------------------
def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(a, b) -> bool:
    """Equality of JSON values: numbers by value, booleans only with booleans, arrays and objects
    member by member."""
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    return a == b


def _ordered(a, b) -> bool:
    return (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))


def lookup(data, path: tuple[str, ...]):
    """The value at `path` in `data`, or _MISSING."""
    value = data
    for name in path:
        if isinstance(value, dict):
            if name not in value:
                return _MISSING
            value = value[name]
        elif isinstance(value, list) and name.isdigit():
            index = int(name)
            if index >= len(value):
                return _MISSING
            value = value[index]
        else:
            return _MISSING
    return value


# --- compiling ------------------------------------------------------------------------------------
Test = Callable[[object], bool]


def _field_test(operator: str, operand, where: str) -> Test:
    if operator in ("$eq", "$neq"):
        _check_literal(operand, where)
        if operator == "$eq":
            return lambda v: v is not _MISSING and json_equal(v, operand)
        return lambda v: v is _MISSING or not json_equal(v, operand)
    if operator in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise FilterError(where, f'{operator} takes a list of values, as in {operator}: ["whatsapp", "telegram"]')
        if len(operand) > MAX_LIST:
            raise FilterError(where, f"{operator} takes at most {MAX_LIST} values")
        for index, item in enumerate(operand):
            _check_literal(item, f"{where}[{index}]")
        if operator == "$in":
            return lambda v: v is not _MISSING and any(json_equal(v, item) for item in operand)
        return lambda v: v is _MISSING or not any(json_equal(v, item) for item in operand)
    if operator == "$exists":
        if not isinstance(operand, bool):
            raise FilterError(where, "$exists takes true or false")
        return (lambda v: v is not _MISSING) if operand else (lambda v: v is _MISSING)
    if operator in ("$gt", "$gte", "$lt", "$lte"):
        if not (_is_number(operand) or isinstance(operand, str)):
            raise FilterError(where, f"{operator} compares with a number or a string, not {_kind(operand)}")
        compare = {
            "$gt": lambda v: v > operand,
            "$gte": lambda v: v >= operand,
            "$lt": lambda v: v < operand,
            "$lte": lambda v: v <= operand,
        }[operator]
        return lambda v: v is not _MISSING and _ordered(v, operand) and compare(v)
    known = ", ".join(FIELD_OPERATORS)
    raise FilterError(where, f"unknown operator {operator!r}; known: {known}")


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "a number" if _is_number(value) else "a string"


def _check_literal(value, where: str) -> None:
    """Any JSON value (an object only inside an operator: as a field's value it is a nested path)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(where, "numbers must be finite")
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_literal(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_literal(item, f"{where}.{key}")


def _path(prefix: tuple[str, ...], key: str, where: str) -> tuple[str, ...]:
    if not key or any(not part for part in key.split(".")):
        raise FilterError(where, f"{key!r} is not a field path (names joined by dots, as in ticket.priority)")
    return prefix + tuple(key.split("."))


def _compile(node, where: str, prefix: tuple[str, ...], depth: int) -> Test:
    """A test on the whole data for the filter object `node`, whose fields sit under `prefix`."""
    if depth > MAX_DEPTH:
        raise FilterError(where, f"the filter nests deeper than {MAX_DEPTH} levels")
    if not isinstance(node, dict):
        raise FilterError(where, f"a filter is an object of field paths and conditions, not {_kind(node)}")
    tests: list[Test] = []
    for key, value in node.items():
        here = f"{where}.{key}"
        if key in LOGICAL_OPERATORS:
            if not isinstance(value, list) or not value:
                raise FilterError(here, f"{key} takes a non-empty list of filters")
            parts = [_compile(item, f"{here}[{i}]", prefix, depth + 1) for i, item in enumerate(value)]
            tests.append(
                (lambda d, parts=parts: all(p(d) for p in parts))
                if key == "$and"
                else (lambda d, parts=parts: any(p(d) for p in parts))
            )
        elif key.startswith("$"):
            raise FilterError(here, f"unknown operator {key!r} here; $and and $or combine filters, the others go inside a field")
        else:
            path = _path(prefix, key, here)
            if isinstance(value, dict) and value and all(k.startswith("$") and k not in LOGICAL_OPERATORS for k in value):
                field_tests = [_field_test(op, operand, f"{here}.{op}") for op, operand in value.items()]
                tests.append(lambda d, path=path, ts=field_tests: _all_on(lookup(d, path), ts))
            elif isinstance(value, dict):
                if any(k.startswith("$") and k not in LOGICAL_OPERATORS for k in value):
                    raise FilterError(here, "mixes operators and field names; put each in its own object")
                if not value:
                    raise FilterError(here, "an empty object matches nothing; give fields or operators")
                tests.append(_compile(value, here, path, depth + 1))
            else:
                tests.append(_field_on(path, _field_test("$eq", value, here)))
    return lambda d: all(t(d) for t in tests)


def _all_on(value, tests: list[Test]) -> bool:
    return all(t(value) for t in tests)


def _field_on(path: tuple[str, ...], test: Test) -> Test:
    return lambda d: test(lookup(d, path))


def filter_compile(condition) -> Test:
    """A test on an event's data; raises FilterError naming the bad part."""
    return _compile(condition, "filter", (), 0)


def filter_validate(condition) -> dict | None:
    """The filter to store (None: every event), or a ValidationError naming the bad part."""
    if condition is None or condition == {}:
        return None
    try:
        size = len(json.dumps(condition, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValidationError({"filter": f"the filter is not plain JSON: {exc}"}) from exc
    if size > MAX_FILTER_BYTES:
        raise ValidationError({"filter": f"the filter is {size} bytes; the limit is {MAX_FILTER_BYTES}"})
    try:
        filter_compile(condition)
    except FilterError as exc:
        raise ValidationError({"filter": str(exc)}) from exc
    except RecursionError as exc:
        raise ValidationError({"filter": "the filter nests too deeply"}) from exc
    return condition


@lru_cache(maxsize=1024)
def _compiled(condition_json: str) -> Test:
    return filter_compile(json.loads(condition_json))


def filter_matches(condition, data) -> bool:
    """Whether `data` passes the stored `condition` (a dict, or its JSON text as read at publish).
    A stored filter that no longer compiles lets every event through: losing events is worse."""
    if condition is None:
        return True
    text = condition if isinstance(condition, str) else json.dumps(condition, sort_keys=True)
    try:
        test = _compiled(text)
    except (FilterError, ValueError):
        return True
    return test(data)
