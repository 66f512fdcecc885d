"""core.jsjson must emit exactly the bytes Node's JSON.stringify(JSON.parse(body)) gives."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from core.jsjson import MAX_DEPTH, MAX_SAFE_INTEGER, Fragment, UnsafeJSONError, check_safe, dumps, parse
from tests.support.json_values import json_values

# One node process for the whole module: base64 line in, base64 line out (or "!error").
_NODE_SCRIPT = r"""
const rl = require('readline').createInterface({input: process.stdin, crlfDelay: Infinity});
rl.on('line', (line) => {
  let out;
  try {
    const text = JSON.stringify(JSON.parse(Buffer.from(line, 'base64').toString('utf8')));
    out = Buffer.from(text, 'utf8').toString('base64');
  } catch (e) { out = '!' + e.message; }
  process.stdout.write(out + '\n');
});
"""


class Node:
    """Round-trips JSON bytes through a long-running node child process."""

    def __init__(self, path: str) -> None:
        self.proc = subprocess.Popen([path, "-e", _NODE_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def restringify(self, body: bytes) -> bytes:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(base64.b64encode(body) + b"\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        assert line and not line.startswith(b"!"), f"node failed on {body!r}: {line!r}"
        return base64.b64decode(line)

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed; cannot compare against JSON.stringify")
    runner = Node(path)
    yield runner
    runner.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, b"1"),
        (-0.0, b"0"),
        (1e21, b"1e+21"),
        (1e-7, b"1e-7"),
        (1.5e-7, b"1.5e-7"),
        (1.2345678901234568e20, b"123456789012345680000"),
        (0.000001, b"0.000001"),
        (0.00001, b"0.00001"),
        (0.1, b"0.1"),
        (-2.5, b"-2.5"),
        (1e300, b"1e+300"),
        (5e-324, b"5e-324"),
        (2.0**53, b"9007199254740992"),
        (MAX_SAFE_INTEGER, b"9007199254740991"),
        (-MAX_SAFE_INTEGER, b"-9007199254740991"),
        (True, b"true"),
        (None, b"null"),
        ('"\\\b\f\n\r\t', b'"\\"\\\\\\b\\f\\n\\r\\t"'),
        ("\x00\x1f\x7f", b'"\\u0000\\u001f\x7f"'),
        ("\u2028\u2029é😀", '"\u2028\u2029é😀"'.encode()),
        ("\ud800x\udfff", b'"\\ud800x\\udfff"'),
        ("\ud83d\ude00", '"😀"'.encode()),  # a pair is one character to JS
        (
            {"b": 1, "10": 2, "2": 3, "01": 4, "a": 5, "4294967295": 6, "4294967294": 7, "0": 8},
            b'{"0":8,"2":3,"10":2,"4294967294":7,"b":1,"01":4,"a":5,"4294967295":6}',
        ),
        ({"x": [{"1": 1.0, "y": 1e-7}], "0": {}}, b'{"0":{},"x":[{"1":1,"y":1e-7}]}'),
        ({"\ud83d\ude00": 1, "a": 2, "😀": 3}, '{"😀":3,"a":2}'.encode()),  # JSON.parse merges these
        ([], b"[]"),
    ],
)
def test_examples(value: Any, expected: bytes) -> None:
    assert dumps(value) == expected


def test_examples_agree_with_node(node: Node) -> None:
    for body in [b'{"b":1,"10":2,"2":3,"01":4,"a":5,"4294967295":6}', b"[1e21,1e-7,0.000001,1.0,-0.0]"]:
        assert dumps(json.loads(body)) == node.restringify(body)


def test_every_bmp_character_and_lone_surrogate_matches_node(node: Node) -> None:
    # Verifies that json.dumps(ensure_ascii=False) escapes exactly like JSON.stringify.
    ordinary = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000) + "😀\U0010ffff"
    lone = "x".join(chr(c) for c in range(0xD800, 0xE000))  # "x" keeps every surrogate unpaired
    for value in ([ordinary], {lone: lone}):
        body = dumps(value)
        assert node.restringify(body) == body
        assert body == node.restringify(json.dumps(value).encode())


def test_unsupported_types_raise_type_error() -> None:
    for bad in [object(), {1: "a"}, {"a": {1, 2}}, b"bytes"]:
        with pytest.raises(TypeError):
            dumps(bad)


def test_dumps_refuses_values_javascript_would_change() -> None:
    with pytest.raises(UnsafeJSONError, match=r"data\.items\[3\]\.id"):
        dumps({"items": [0, 1, 2, {"id": 2**53}]})
    with pytest.raises(UnsafeJSONError, match=r'data\["a b"\]\[0\]'):
        dumps({"a b": [float("nan")]})


def test_parse_reads_numbers_as_javascript_does() -> None:
    # Beyond ±(2**53 - 1) an integer literal is the double JSON.parse rounds it to.
    assert parse(b'{"big": 123456789012345680000, "id": 9007199254740991}') == {
        "big": 1.2345678901234568e20,
        "id": MAX_SAFE_INTEGER,
    }
    assert type(parse("[9007199254740992]")[0]) is float
    assert parse("[1e300, -0.0, 5e-324]") == [1e300, 0.0, 5e-324]
    for constant in ["NaN", "Infinity", "-Infinity"]:
        with pytest.raises(ValueError, match="is not a JSON number"):
            parse(f"[{constant}]")


def test_parse_keeps_the_stored_key_order() -> None:
    assert list(parse('{"b":1,"a":2,"0":3}')) == ["b", "a", "0"]


def test_a_fragment_is_embedded_as_it_is() -> None:
    data = dumps({"b": 1.0, "a": [1e21]}).decode()
    assert dumps({"event": "x", "data": Fragment(data)}) == b'{"event":"x","data":{"b":1,"a":[1e+21]}}'
    assert dumps([Fragment("[]"), 0.1]) == b"[[],0.1]"


def test_check_safe_refuses_nesting_deeper_than_the_limit_naming_the_path() -> None:
    def nested(depth: int) -> dict:
        value: dict = {}
        for _ in range(depth - 1):
            value = {"a": value}
        return value

    check_safe(nested(MAX_DEPTH))
    with pytest.raises(UnsafeJSONError, match=rf"nested more than {MAX_DEPTH} levels") as info:
        check_safe(nested(MAX_DEPTH + 1))
    assert info.value.path == "data" + ".a" * MAX_DEPTH
    with pytest.raises(UnsafeJSONError, match="nested more than"):
        check_safe(nested(10_000))  # stops at the limit: no RecursionError on the way


def test_check_safe_walks_parsed_values() -> None:
    check_safe({"a": [1, 2.5, 1e300, None, True, "x"]})
    with pytest.raises(UnsafeJSONError, match=r"payload\.a\[1\]"):
        check_safe({"a": [0, -(2**53)]}, path="payload")
    with pytest.raises(UnsafeJSONError, match=r"data\.f is inf"):
        check_safe({"f": float("inf")})


_json = json_values()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_json)
def test_dumps_matches_node(node: Node, value: Any) -> None:
    body = dumps(value)
    # Fixed point: Node re-serialising our bytes changes nothing (what the receiver verifies).
    assert node.restringify(body) == body
    # Same value: Python's plain ASCII JSON of the input, re-serialised by Node, is the reference.
    assert body == node.restringify(json.dumps(value).encode())


@settings(max_examples=300, deadline=None)
@given(value=_json)
def test_what_dumps_made_parses_and_dumps_to_the_same_bytes(value: Any) -> None:
    # The worker reads stored data with parse() for the formats that pick fields out of it: a
    # number Python alone would read as an unsafe int (an integral double of 2**53 or more,
    # printed as digits) must come back as the same double, not be refused or changed.
    body = dumps(value)
    assert dumps(parse(body)) == body
