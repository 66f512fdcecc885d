"""Hypothesis strategies for JSON values of every shape Python's json and JavaScript produce."""

from hypothesis import strategies as st

from core.jsjson import MAX_SAFE_INTEGER

surrogates = st.integers(0xD800, 0xDFFF).map(chr)
specials = st.sampled_from(list('"\\\b\f\n\r\t\x00\x1f\x7f\u2028\u2029é€😀\ud83d\ude00'))
text = st.text(st.one_of(st.characters(codec=None), surrogates, specials), max_size=12)
# Storable text: what PostgreSQL holds (no NUL, no unpaired surrogate), non-ASCII included.
storable_text = st.text(
    st.one_of(st.characters(codec="utf-8", exclude_characters="\x00"), st.sampled_from(list('é€😀\u2028"\\\n'))),
    max_size=12,
)
integer_like_keys = st.sampled_from(
    ["0", "1", "2", "10", "01", "00", "-1", "1.5", "1e3", " 1", "٣", "4294967294", "4294967295", "4294967296", "9007199254740993"]
)
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e-3, max_value=1e-3, allow_nan=False),
    st.floats(min_value=1e15, max_value=1e23).flatmap(lambda f: st.sampled_from([f, -f, float(round(f))])),
    st.sampled_from([1e21, 1e-6, 1e-7, 0.000001, 123456789012345680000.0, -0.0, 1e300, 5e-324]),
)
safe_integers = st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)


NO_EXTRA = st.nothing()


def json_values(strings=text, max_leaves: int = 25, extra_scalars=NO_EXTRA):
    keys = st.one_of(strings, integer_like_keys, st.integers(0, 2**32).map(str))
    scalars = st.one_of(st.none(), st.booleans(), safe_integers, floats, strings, extra_scalars)
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=6),
        max_leaves=max_leaves,
    )
