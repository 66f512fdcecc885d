"""The documentation site builds with `mkdocs build --strict` (a broken link, a missing anchor or a
page missing from the site fails it), its REST API reference covers every operation of the live
OpenAPI schema, and the README stays a short doorway whose links lead to pages that exist."""

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 200
METHODS = ("get", "post", "put", "patch", "delete")


def mkdocs_build(site_dir: Path, config: Path = ROOT / "mkdocs.yml") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site_dir)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site_dir = tmp_path_factory.mktemp("site")
    done = mkdocs_build(site_dir)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return site_dir


def test_the_site_builds_strict_with_every_page_of_the_nav(site):
    for page in ("index.html", "getting-started/index.html", "configuration/index.html", "glossary/index.html"):
        assert (site / page).is_file(), page
    for name in ("agentbot", "chatzuri", "leads", "standard"):
        assert (site / "receivers" / name / "index.html").is_file(), name
    assert "Agentbot Webhooks" in (site / "index.html").read_text()


def test_a_broken_link_fails_the_strict_build(tmp_path):
    """The check is real: the same configuration with one page linking to a missing page fails."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the missing page](missing.md).\n")
    config = tmp_path / "mkdocs.yml"
    kept = [line for line in (ROOT / "mkdocs.yml").read_text().splitlines() if not line.startswith("docs_dir")]
    text = "\n".join(kept).split("\nnav:")[0]  # no nav: the page list is the folder's
    text = text.replace("hooks:\n  - scripts/mkdocs_openapi.py", "hooks: []")
    config.write_text(f"docs_dir: {docs}\n" + text + "\n")
    done = mkdocs_build(tmp_path / "site", config)
    assert done.returncode != 0
    assert "missing.md" in done.stdout + done.stderr


def test_the_api_reference_covers_every_operation_of_the_live_schema(site):
    schema = Client().get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    reference = html.unescape((site / "api" / "reference" / "index.html").read_text())
    operations = [(method.upper(), path) for path, item in schema["paths"].items() for method in METHODS if method in item]
    assert len(operations) > 20
    missing = [f"{method} {path}" for method, path in operations if f"<code>{method} {path}</code>" not in reference]
    assert missing == []
    for name in schema["components"]["schemas"]:
        assert f'id="schema-{re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")}"' in reference, name
    assert (site / "api" / "openapi.json").is_file()


def test_the_readme_is_a_short_doorway_to_pages_that_exist():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "make run" in text and "make test" in text and "make docs" in text
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert sum(link.startswith("docs/") for link in local) >= 10
    missing = [link for link in local if not (ROOT / link).is_file()]
    assert missing == []


def test_the_configuration_page_names_every_environment_variable_the_code_reads():
    """A variable the service reads (os.environ, or settings.py's env_* helpers) is in docs/configuration.md."""
    read = re.compile(r"""(?:os\.environ\.get|os\.getenv|os\.environ\[|env_[a-z]+)\(?\s*["']([A-Z][A-Z0-9_]+)["']""")
    sources = [
        path
        for app in ("agentbot", "core", "deliveries", "domain", "inbound", "portal", "subscriptions")
        for path in (ROOT / app).rglob("*.py")
    ]
    names = {name for path in sources for name in read.findall(path.read_text())} - {"DJANGO_SETTINGS_MODULE"}
    assert len(names) > 40
    page = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(name for name in names if f"`{name}`" not in page)
    assert missing == [], f"add these to docs/configuration.md: {missing}"


def test_no_page_calls_a_product_document_a_seed():
    pages = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    named = [str(page.relative_to(ROOT)) for page in pages if re.search(r"\bseeds?\b", page.read_text(), flags=re.I)]
    assert named == []
