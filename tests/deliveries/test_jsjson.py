"""deliveries.jsjson must emit exactly the bytes Node's JSON.stringify(JSON.parse(body)) gives."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deliveries.jsjson import MAX_SAFE_INTEGER, UnsafeJSONError, check_safe, dumps, loads

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
        ("\"\\\b\f\n\r\t", b'"\\"\\\\\\b\\f\\n\\r\\t"'),
        ("\x00\x1f\x7f", b'"\\u0000\\u001f\x7f"'),
        ("\u2028\u2029é😀", "\"\u2028\u2029é😀\"".encode()),
        ("\ud800x\udfff", b'"\\ud800x\\udfff"'),
        ("\ud83d\ude00", "\"😀\"".encode()),  # a pair is one character to JS
        ({"b": 1, "10": 2, "2": 3, "01": 4, "a": 5, "4294967295": 6, "4294967294": 7, "0": 8},
         b'{"0":8,"2":3,"10":2,"4294967294":7,"b":1,"01":4,"a":5,"4294967295":6}'),
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


def test_loads_refuses_unsafe_numbers_naming_the_path() -> None:
    with pytest.raises(UnsafeJSONError, match=r"data\.items\[3\]\.id is 9007199254740992.*string"):
        loads(b'{"items": [0, 1, 2, {"id": 9007199254740992}]}')
    with pytest.raises(UnsafeJSONError, match=r"data\.x\.y is nan") as info:
        loads('{"x": {"y": NaN}}')
    assert info.value.path == "data.x.y"
    for constant in ["Infinity", "-Infinity", "-9007199254740992", "1e400"]:
        with pytest.raises(UnsafeJSONError, match=r"data\[0\]"):
            loads(f"[{constant}]")
    assert loads(b'{"id": 9007199254740991, "neg": -9007199254740991}') == {
        "id": MAX_SAFE_INTEGER, "neg": -MAX_SAFE_INTEGER}
    assert loads("[1e300]") == [1e300]  # integral but a float: JS prints 1e+300, nothing lost


def test_check_safe_walks_parsed_values() -> None:
    check_safe({"a": [1, 2.5, 1e300, None, True, "x"]})
    with pytest.raises(UnsafeJSONError, match=r"payload\.a\[1\]"):
        check_safe({"a": [0, -(2**53)]}, path="payload")
    with pytest.raises(UnsafeJSONError, match=r"data\.f is inf"):
        check_safe({"f": float("inf")})


_surrogates = st.integers(0xD800, 0xDFFF).map(chr)
_specials = st.sampled_from(list('"\\\b\f\n\r\t\x00\x1f\x7f\u2028\u2029é€😀\ud83d\ude00'))
_text = st.text(st.one_of(st.characters(codec=None), _surrogates, _specials), max_size=12)
_keys = st.one_of(
    _text,
    st.sampled_from(["0", "1", "2", "10", "01", "00", "-1", "1.5", "1e3", " 1", "٣",
                     "4294967294", "4294967295", "4294967296", "9007199254740993"]),
    st.integers(0, 2**32).map(str),
)
_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e-3, max_value=1e-3, allow_nan=False),
    st.floats(min_value=1e15, max_value=1e23).flatmap(lambda f: st.sampled_from([f, -f, float(round(f))])),
    st.sampled_from([1e21, 1e-6, 1e-7, 0.000001, 123456789012345680000.0, -0.0, 1e300, 5e-324]),
)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER), _floats, _text)
_json = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_keys, children, max_size=6),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_json)
def test_dumps_matches_node(node: Node, value: Any) -> None:
    body = dumps(value)
    # Fixed point: Node re-serialising our bytes changes nothing (what the receiver verifies).
    assert node.restringify(body) == body
    # Same value: Python's plain ASCII JSON of the input, re-serialised by Node, is the reference.
    assert body == node.restringify(json.dumps(value).encode())
