"""Run the Node verifier (the documents' receiver code) over recorded requests."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

VERIFY_JS = Path(__file__).with_name("verify.js")
PACKAGES = Path(__file__).with_name("js")  # package.json of the Node packages tests run
NODE_DEPS = Path(__file__).resolve().parents[2] / "scripts" / "node_deps.sh"
SEED_RECEIVERS_JS = Path(__file__).with_name("seed_receivers.js")


def node_verify(format_name: str, secret: str, requests, *, script: Path = VERIFY_JS) -> list[dict]:
    """verify.js: a careful receiver (any v1 may match); seed_receivers.js: the documents' own."""
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed")
    lines = "".join(
        json.dumps({"format": format_name, "secret": secret, "headers": r.headers, "body": r.body.decode("utf-8")}) + "\n"
        for r in requests
    )
    done = subprocess.run(["node", str(script)], input=lines, capture_output=True, text=True, timeout=30, check=True)
    return [json.loads(line) for line in done.stdout.splitlines()]


def seed_verify(format_name: str, secret: str, requests) -> list[bool]:
    """Whether each request passes the format's document's own Node receiver holding `secret`."""
    return [r["ok"] for r in node_verify(format_name, secret, requests, script=SEED_RECEIVERS_JS)]


def node_modules() -> Path:
    """tests/support/js/node_modules (socket.io-client, express), installed by npm when missing
    (scripts/node_deps.sh, which `make test` runs first)."""
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed")
    subprocess.run(["bash", str(NODE_DEPS)], check=True, timeout=300)
    found = PACKAGES / "node_modules"
    assert all((found / name).is_dir() for name in ("express", "socket.io-client", "jose")), f"npm install in {PACKAGES} failed"
    return found


JWE_ENCRYPT_JS = Path(__file__).with_name("jwe_encrypt.js")


def jose_encrypt(jwt: str, public_key: str, *, alg: str = "RSA-OAEP-256", enc: str = "A256GCM") -> str:
    """A compact JWE of `jwt` made by npm `jose` (CompactEncrypt) with the instance's public key."""
    modules = node_modules()
    done = subprocess.run(
        ["node", str(JWE_ENCRYPT_JS)],
        input=json.dumps({"jwt": jwt, "publicKey": public_key, "alg": alg, "enc": enc}),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={"NODE_PATH": str(modules), "PATH": os.environ.get("PATH", "")},
    )
    return done.stdout.strip()
