"""Run the Node verifier (the documents' receiver code) over recorded requests."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

VERIFY_JS = Path(__file__).with_name("verify.js")


def node_verify(format_name: str, secret: str, requests) -> list[dict]:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed")
    lines = "".join(
        json.dumps({"format": format_name, "secret": secret, "headers": r.headers, "body": r.body.decode("utf-8")}) + "\n"
        for r in requests
    )
    done = subprocess.run(["node", str(VERIFY_JS)], input=lines, capture_output=True, text=True, timeout=30, check=True)
    return [json.loads(line) for line in done.stdout.splitlines()]
