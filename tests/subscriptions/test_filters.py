"""The filter language: its evaluation matches a plain reference evaluator on random payloads and
random filters (hypothesis), and a filtered-out event creates no delivery."""

import math

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deliveries.services.publish import event_publish
from subscriptions.filters import filter_compile, filter_matches, filter_validate

MISSING = object()

# --- a reference evaluator, written apart from subscriptions/filters.py -----------------------


def ref_get(data, path: str):
    node = data
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def ref_same(a, b) -> bool:
    """JSON equality: compare the canonical forms, where 1 and 1.0 are one number and true is not 1."""

    def canon(v):
        if isinstance(v, bool):
            return ("bool", v)
        if isinstance(v, int | float):
            return ("num", float(v))
        if isinstance(v, list):
            return ("list", tuple(canon(x) for x in v))
        if isinstance(v, dict):
            return ("obj", tuple(sorted((k, canon(x)) for k, x in v.items())))
        return (type(v).__name__, v)

    return canon(a) == canon(b)


def ref_op(op: str, value, operand) -> bool:
    if op == "$exists":
        return (value is not MISSING) == operand
    if op == "$neq":
        return value is MISSING or not ref_same(value, operand)
    if op == "$nin":
        return value is MISSING or all(not ref_same(value, o) for o in operand)
    if value is MISSING:
        return False
    if op == "$eq":
        return ref_same(value, operand)
    if op == "$in":
        return any(ref_same(value, o) for o in operand)
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (value, operand))
    strings = isinstance(value, str) and isinstance(operand, str)
    if not (numbers or strings):
        return False
    return {"$gt": value > operand, "$gte": value >= operand, "$lt": value < operand, "$lte": value <= operand}[op]


def ref_eval(condition: dict, data, prefix: str = "") -> bool:
    results = []
    for key, value in condition.items():
        if key == "$and":
            results.append(all(ref_eval(c, data, prefix) for c in value))
        elif key == "$or":
            results.append(any(ref_eval(c, data, prefix) for c in value))
        else:
            path = f"{prefix}{key}"
            if isinstance(value, dict) and all(k.startswith("$") and k not in ("$and", "$or") for k in value):
                field = ref_get(data, path)
                results.append(all(ref_op(op, field, operand) for op, operand in value.items()))
            elif isinstance(value, dict):
                results.append(ref_eval(value, data, f"{path}."))
            else:
                results.append(ref_op("$eq", ref_get(data, path), value))
    return all(results)


# --- random payloads and filters over a small vocabulary, so they often meet ------------------
NAMES = st.sampled_from(["channel", "priority", "amount", "tags", "ticket", "vip", "0"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(-3, 3, allow_nan=False).map(lambda f: round(f, 1)),
    st.sampled_from(["whatsapp", "telegram", "web", "high", "low", ""]),
)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=4), max_leaves=12)
PAYLOADS = st.dictionaries(NAMES, JSON, max_size=5)
PATHS = st.lists(NAMES, min_size=1, max_size=3).map(".".join)
ORDERED = st.one_of(st.integers(-3, 3), st.sampled_from(["high", "low", "m"]))
OPERATORS = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$neq"]), SCALARS),
    st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(SCALARS, max_size=4)),
    st.tuples(st.just("$exists"), st.booleans()),
    st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), ORDERED),
)
FIELD_CONDITIONS = st.one_of(SCALARS, st.lists(OPERATORS, min_size=1, max_size=3).map(dict))


def conditions(depth: int = 2):
    field = st.dictionaries(PATHS, FIELD_CONDITIONS, min_size=1, max_size=3)
    if depth == 0:
        return field
    inner = conditions(depth - 1)
    return st.one_of(
        field,
        st.dictionaries(NAMES, inner, min_size=1, max_size=2),  # nested object: paths under a name
        st.builds(lambda kind, parts: {kind: parts}, st.sampled_from(["$and", "$or"]), st.lists(inner, min_size=1, max_size=3)),
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(condition=conditions(), data=PAYLOADS)
def test_evaluation_matches_the_reference_evaluator(condition, data):
    assert filter_compile(condition)(data) == ref_eval(condition, data)


@settings(max_examples=200, deadline=None)
@given(data=PAYLOADS)
def test_a_value_found_in_the_payload_matches_itself(data):
    for key, value in data.items():
        if isinstance(value, float) and math.isnan(value):
            continue
        assert filter_compile({key: {"$eq": value}})(data) and filter_compile({key: {"$exists": True}})(data)


@pytest.mark.parametrize(
    "condition, data, expected",
    [
        ({"channel": {"$in": ["whatsapp", "telegram"]}}, {"channel": "telegram"}, True),
        ({"channel": {"$in": ["whatsapp", "telegram"]}}, {"channel": "web"}, False),
        ({"ticket": {"priority": "high"}}, {"ticket": {"priority": "high", "status": "open"}}, True),
        (
            {"ticket.priority": "high", "ticket.status": {"$neq": "closed"}},
            {"ticket": {"priority": "high", "status": "closed"}},
            False,
        ),
        ({"$or": [{"amount": {"$gte": 100}}, {"vip": True}]}, {"amount": 20, "vip": True}, True),
        ({"amount": {"$gt": 10}}, {"amount": "20"}, False),
        ({"vip": 1}, {"vip": True}, False),
        ({"amount": 1}, {"amount": 1.0}, True),
        ({"tags.0": "new"}, {"tags": ["new", "vip"]}, True),
        ({"missing": {"$exists": False}}, {}, True),
    ],
)
def test_documented_examples(condition, data, expected):
    assert filter_matches(condition, data) is expected


def test_filter_validate_names_the_bad_part_and_empty_means_none():
    assert filter_validate({}) is None and filter_validate(None) is None
    with pytest.raises(ValidationError, match=r"filter\.a\.\$or\[1\]: a filter is an object .*, not a number"):
        filter_validate({"a": {"c": 1, "$or": [{"b": 1}, 3]}})
    with pytest.raises(ValidationError, match=r"filter\.a: mixes operators and field names"):
        filter_validate({"a": {"b": 1, "$gt": 3}})


@pytest.mark.django_db
def test_a_filtered_out_event_creates_no_delivery(site, webhook_factory):
    whatsapp = webhook_factory(site=site, events=["message.created"], filter={"channel": {"$in": ["whatsapp", "telegram"]}})
    everything = webhook_factory(site=site, events=["message.created"])
    with transaction.atomic():
        web, _ = event_publish(site=site, event_type="message.created", data={"channel": "web", "body": "hi"})
        chat, _ = event_publish(site=site, event_type="message.created", data={"channel": "whatsapp", "body": "hi"})
    assert list(web.deliveries.values_list("webhook_id", flat=True)) == [everything.id]
    assert set(chat.deliveries.values_list("webhook_id", flat=True)) == {whatsapp.id, everything.id}


@pytest.mark.django_db
def test_the_filter_holds_on_the_idempotent_publish_path_too(site, webhook_factory):
    """With an idempotency key the candidates are read through the ORM (a dict filter, not JSON text)."""
    ticket = webhook_factory(site=site, events=["ticket.created"], filter={"priority": "high"})
    with transaction.atomic():
        low, _ = event_publish(site=site, event_type="ticket.created", data={"priority": "low"}, idempotency_key="k1")
        high, _ = event_publish(site=site, event_type="ticket.created", data={"priority": "high"}, idempotency_key="k2")
    assert not low.deliveries.exists()
    assert list(high.deliveries.values_list("webhook_id", flat=True)) == [ticket.id]
