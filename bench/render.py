"""Render time of every delivery format against the size of the event's text: linear, or flat where
the format shows only what fits on the platform (Slack, Discord, Teams cut before they escape).

No database, no queue: `Envelope` → `DeliveryFormat.render`, the work a worker's task thread does per
event and format. Each size is a text of that many characters, a third of them line breaks in one
run (the input that once cost n²/2 in the Discord escape) and the rest markdown-looking lines.

    DATABASE_URL=postgres://… .venv/bin/python bench/render.py [--sizes 10000,100000,1000000]

Prints one JSON line per format and size: {"format", "chars", "newlines", "ms"} (best of --repeat),
then a table; the last column is ms per 100,000 characters, which stays flat (or falls) when the
cost is linear.
"""

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentbot.settings")

import django  # noqa: E402

django.setup()

from deliveries.formats import FORMATS  # noqa: E402
from deliveries.formats.types import Envelope  # noqa: E402

MARKDOWN = "# heading **bold** _it_ `code` [link](https://e.example) @everyone <@1> & <b>\n> quote\n- item\n12. item\n"


def text_of(chars: int) -> str:
    newlines = chars // 3
    rest = chars - newlines - len("Hello")
    return "Hello" + "\n" * newlines + (MARKDOWN * (rest // len(MARKDOWN) + 1))[:rest]


def render_ms(format_name: str, chars: int, repeat: int) -> float:
    best = float("inf")
    data = {"conversation_id": "conv_b", "sender_type": "visitor", "visitor_name": "Ada", "body": text_of(chars)}
    for _ in range(repeat):
        # A fresh envelope each time: parsing the stored data is part of the render.
        envelope = Envelope.of("evt_b", "message.created", "site_b", datetime.now(UTC), data)
        started = time.perf_counter()
        FORMATS[format_name].render(envelope)
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,30000,100000,300000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for name in sorted(FORMATS):
        if name == "chat2desk":  # a connector's reply format: it reads the integration from the database
            continue
        for chars in sizes:
            ms = render_ms(name, chars, args.repeat)
            rows.append((name, chars, ms))
            print(json.dumps({"format": name, "chars": chars, "newlines": chars // 3, "ms": round(ms, 3)}), flush=True)
    print(f"\n{'format':<10}{'chars':>10}{'ms':>10}{'ms/100k chars':>16}")
    for name, chars, ms in rows:
        print(f"{name:<10}{chars:>10}{ms:>10.2f}{ms * 100_000 / chars:>16.2f}")


if __name__ == "__main__":
    main()
