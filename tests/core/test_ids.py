"""Public ids: prefix, 26 lowercase Crockford base32 digits, sortable by creation time."""

import random
import re
import time

from core.ids import _ALPHABET, base32, new_delivery_id, ulid


def digits_one_at_a_time(value: int) -> str:
    """The plain definition: 26 digits of 5 bits, most significant first."""
    return "".join(_ALPHABET[(value >> (5 * n)) & 31] for n in reversed(range(26)))


def test_base32_matches_the_digit_by_digit_definition():
    rng = random.Random(4)
    values = [0, 1, 31, 32, 2**128 - 1, 2**125, 2**125 - 1] + [rng.getrandbits(128) for _ in range(2000)]
    for value in values:
        assert base32(value) == digits_one_at_a_time(value)


def test_ids_have_their_prefix_and_26_digits_and_sort_by_time():
    assert re.fullmatch(r"dlv_[0-9a-hjkmnp-tv-z]{26}", new_delivery_id())
    first = ulid()
    time.sleep(0.002)
    assert first < ulid()
    assert len({ulid() for _ in range(1000)}) == 1000
