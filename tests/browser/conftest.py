"""A real browser for the admin: Playwright driving Debian's chromium (never a downloaded build).

`make test` installs chromium through scripts/browser.sh. Without it these tests fail and say how
to install it: a missing browser must not look like a passing suite.
"""

import os
from pathlib import Path

import pytest
from django.db import connections

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PASSWORD = "browser-test-password"


@pytest.fixture
def browser_page(monkeypatch):
    """A fresh page in headless chromium; screenshots go to tests/artifacts/."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium. Run `bash scripts/browser.sh` "
            "(it runs `apt-get install -y chromium`) or `make test`, which calls it.",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: run `.venv/bin/pip install -e '.[test]'`", pytrace=False)
    # Playwright's sync API keeps an event loop running in this thread, which Django would take for
    # async code; the test's own ORM calls are ordinary synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            browser.close()
            # The test's own queries ran beside Playwright's loop, on a connection Django's teardown
            # does not see; left open, it would keep the test database from being dropped.
            connections.close_all()


@pytest.fixture
def base_url(transactional_db, live_server) -> str:
    """The live server's address. Asking for the database first makes pytest start the test
    database before the (session-long) live server, and so drop it only after the server closed
    its connections."""
    return live_server.url


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", "operator@example.com", PASSWORD)


def screenshot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page, base_url: str, user) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
