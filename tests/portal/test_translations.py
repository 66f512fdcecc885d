"""The portal's Brazilian Portuguese is complete: every string its templates and code mark for
translation has a translation in locale/pt_BR, and the catalogue has no empty or fuzzy entry."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "locale" / "pt_BR" / "LC_MESSAGES" / "django.po"
TRANSLATE = re.compile(r"""\{% translate (["'])(.*?)\1""")
BLOCK = re.compile(r"\{% blocktranslate[^%]*%\}(.*?)\{% endblocktranslate %\}", re.S)
GETTEXT = re.compile(r"""\b_\(\s*(["'])(.*?)(?<!\\)\1\s*\)""")


def catalogue() -> dict[str, str]:
    entries = {}
    for block in CATALOGUE.read_text().split("\n\n")[1:]:
        if block.lstrip().startswith("#~"):  # obsolete
            continue
        if "#, fuzzy" in block:
            entries[object()] = ""
            continue
        msgid = re.search(r'msgid ((?:".*"\n)+)', block + "\n")
        msgstr = re.search(r'msgstr(?:\[0\])? ((?:".*"\n?)+)', block)
        if msgid and msgstr:
            text = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', msgid.group(1))).replace('\\"', '"')
            entries[text] = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', msgstr.group(1)))
    return entries


def portal_strings() -> set[str]:
    found = set()
    for template in (ROOT / "portal" / "templates").rglob("*.html"):
        text = template.read_text()
        found |= {m.group(2) for m in TRANSLATE.finditer(text)}
        found |= {re.sub(r"\{\{ (\w+) \}\}", r"%(\1)s", m.group(1)) for m in BLOCK.finditer(text)}
    for module in (ROOT / "portal").rglob("*.py"):
        found |= {m.group(2).replace('\\"', '"') for m in GETTEXT.finditer(module.read_text())}
    return found


def test_the_catalogue_has_no_empty_or_fuzzy_entry():
    empty = [msgid for msgid, msgstr in catalogue().items() if not msgstr]
    assert not empty, f"untranslated or fuzzy in {CATALOGUE.name}: {empty[:10]}"


def test_every_portal_string_is_in_the_catalogue():
    known = catalogue()
    strings = portal_strings()
    assert len(strings) > 100
    missing = sorted(s for s in strings if s not in known)
    assert not missing, f"run manage.py makemessages -l pt_BR --no-location and translate: {missing[:10]}"
