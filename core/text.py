"""Checks on text every app stores."""


def text_is_storable(text: str) -> bool:
    """PostgreSQL text and jsonb hold neither NUL nor unpaired surrogates (they are not UTF-8)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
