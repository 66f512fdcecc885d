"""docs/webhook-channel-features.md runs as written: its shell blocks, in order, in one bash
against a real uvicorn serving the service on the test database; its `js <file>` blocks are the
files those shell blocks run with Node (npm `jose`)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from core.services import api_key_create
from deliveries.models import Event
from domain.models import Lead
from inbound.models import InboundEvent, UploadedFile
from tests.support.node import node_modules

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PAGE = Path(__file__).resolve().parents[2] / "docs" / "webhook-channel-features.md"
BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def page_script(workdir: Path) -> str:
    """The page's shell blocks as one script; each `js <file>` block written to its file."""
    script = ["set -euo pipefail"]
    for language, info, text in BLOCK.findall(PAGE.read_text()):
        if language == "sh":
            script.append(text)
        elif language == "js":
            (workdir / info.strip()).write_text(text)
    return "\n".join(script)


def test_the_pages_examples_run_against_the_service(site, start_server, tmp_path):
    for tool in ("curl", "jq", "openssl", "split"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    workdir = tmp_path / "reader"
    workdir.mkdir()
    (workdir / "node_modules").symlink_to(node_modules())
    server = start_server(AGENTBOT_UPLOAD_DIR=str(tmp_path / "uploads"))
    _, key = api_key_create(site=site)

    done = subprocess.run(
        ["bash", "-c", page_script(workdir)],
        cwd=workdir,
        env={"PATH": os.environ["PATH"], "HOME": str(workdir), "BASE": server.url, "KEY": key},
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{server.log()[-2000:]}"
    assert '"fileName": "hello.txt"' in done.stdout and "\n401\n" in done.stdout
    assert done.stdout.count('{"ok": true}') == 4
    assert sorted(UploadedFile.objects.values_list("name", "size", "status")) == [
        ("big.txt", 250000, "complete"),
        ("hello.txt", 5, "complete"),
    ]
    (lead,) = Lead.objects.all()
    assert (lead.first_name, lead.email) == ("Ada", "ada@example.com")
    assert Event.objects.filter(type="conversation.merged").count() == 1
    yes = InboundEvent.objects.filter(integration__connector_type="chat2desk", kind="message")
    assert yes.count() == 3, "two repeats without an id, one delivery sent twice with its X-Request-Id"
