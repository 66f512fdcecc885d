"""The receiver guide's verification code (docs/receivers/, one page per format), run as written,
accepts what we send and refuses a wrong secret or a changed body, in Python and in Node."""

import json
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core import jsjson
from deliveries.formats import get_format
from deliveries.formats.types import Envelope, Signing
from subscriptions.models import generate_secret

FORMATS = ["agentbot", "chatzuri", "leads", "standard"]
GUIDE_PAGES = [Path(__file__).resolve().parents[2] / "docs" / "receivers" / f"{name}.md" for name in FORMATS]
LEAD = {
    "conversation_id": "conv_1",
    "first_name": "Zoë",
    "last_name": "Ünal",
    "email": "zoe@example.com",
    "phone": "+1 555 0100",
    "content": "Call me 👋",
    "uri": "https://shop.example.com/p?x=1.0",
}
MESSAGE = {
    "conversation_id": "conv_1",
    "message_id": "msg_1",
    "sender_type": "visitor",
    "body": "Preis? 1.0 €",
    "visitor_email": None,
    "visitor_name": None,
    "channel": "web",
    "source": {},
    "page_url": None,
}


def code_blocks(language: str) -> list[str]:
    """The guide's fenced blocks in `language`, from every format's page."""
    return [block for page in GUIDE_PAGES for block in re.findall(rf"```{language}\n(.*?)```", page.read_text(), flags=re.S)]


def signed_request(format_name: str, secrets: list[str]) -> tuple[dict, bytes]:
    """(lower-cased headers, body) exactly as the engine renders and signs them."""
    event_type = "lead.submit" if format_name == "leads" else "message.created"
    data = LEAD if format_name == "leads" else MESSAGE
    fmt = get_format(format_name)
    body = jsjson.dumps(fmt.build_body(Envelope.of("evt_1", event_type, "site_1", datetime.now(UTC), data)))
    headers = fmt.headers(Signing("dlv_1", event_type, body, secrets, int(time.time())))
    return {name.lower(): value for name, value in headers.items()}, body


def cases(format_name: str) -> list[tuple[str, dict, bytes, bool]]:
    """(secret to verify with, headers, body, should pass)."""
    new, old, other = generate_secret(), generate_secret(), generate_secret()
    headers, body = signed_request(format_name, [new, old])
    found = [(old, headers, body, True), (other, headers, body, False), (old, headers, body.replace(b"1", b"2"), False)]
    # During a rotation the new secret verifies too, except where the header has room for one
    # signature only (chatzuri's is the old secret's until the grace period ends).
    found.append((new, headers, body, format_name != "chatzuri"))
    return found


@pytest.mark.parametrize("format_name", FORMATS)
def test_python_examples_verify_what_we_send(format_name):
    namespace: dict = {}
    for block in code_blocks("python"):
        if f"def verify_{format_name}(" in block:
            exec(block, namespace)  # noqa: S102 - the guide's own code, run as a reader would
    verify = namespace[f"verify_{format_name}"]
    for secret, headers, body, expected in cases(format_name):
        assert verify(secret, headers, body) is expected


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_node_examples_verify_what_we_send():
    functions = [b.replace("const crypto = require('crypto');\n", "") for b in code_blocks("js") if "function verify" in b]
    assert len(functions) == len(FORMATS)
    inputs = [
        {"fn": "verify" + name.capitalize(), "secret": secret, "headers": headers, "body": body.decode(), "expected": expected}
        for name in FORMATS
        for secret, headers, body, expected in cases(name)
    ]
    script = (
        "const crypto = require('crypto');\n"
        + "\n".join(functions)
        + """
const inputs = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const verifiers = { verifyAgentbot, verifyChatzuri, verifyLeads, verifyStandard };
console.log(JSON.stringify(inputs.map((i) => verifiers[i.fn](i.secret, i.headers, Buffer.from(i.body, 'utf8')))));
"""
    )
    done = subprocess.run(["node", "-e", script], input=json.dumps(inputs), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [i["expected"] for i in inputs]
