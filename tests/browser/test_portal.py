"""A site owner's portal in a real browser, against a real worker and receiver: a link made
through the API opens it; a webhook is created, its secret copied once, tested, paused and
resumed, a failed delivery retried, the webhook deleted; a read-only link and a viewer change
nothing; an expired link, another site's URL and framing by another origin are refused. axe-core
checks every page; Portuguese is rendered from the browser's language."""

import os
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from deliveries.models import Delivery
from portal.models import PortalLink, SiteMembership
from portal.services import portal_settings_update
from subscriptions.models import Webhook
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, PASSWORD
from tests.conftest import client_for
from tests.factories import SiteFactory, WebhookFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tests" / "support" / "js" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "tests" / "artifacts"
# AGENTBOT_DOCS_SCREENSHOTS=1 writes the docs' screenshots (docs/img/portal-*.png) as well.
DOCS_IMG = ROOT / "docs" / "img"
DOCS_PAGES = {"webhooks", "new-webhook", "secret", "webhook", "delivery", "events"}


@pytest.fixture
def chromium(monkeypatch):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/browser.sh`", pytrace=False)
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `bash scripts/node_deps.sh`", pytrace=False)
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
            from django.db import connections

            connections.close_all()


def new_page(browser, **options):
    # bypass_csp: axe-core is injected as a script, which the portal's CSP (script-src 'self') refuses.
    context = browser.new_context(viewport={"width": 1300, "height": 900}, bypass_csp=True, **options)
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page


def accessible(page, name: str) -> None:
    """axe-core on the page as it is: no serious or critical violation; a screenshot for the record."""
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"""
    )
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: {bad}"
    page.screenshot(path=str(ARTIFACTS / f"portal-{name}.png"), full_page=True)
    if os.environ.get("AGENTBOT_DOCS_SCREENSHOTS") and name in DOCS_PAGES:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(DOCS_IMG / f"portal-{name}.png"), full_page=False)


def link(site, **options) -> str:
    response = client_for(site).post("/api/v1/portal-links", options, format="json")
    assert response.status_code == 201, response.content
    return response.json()["url"]


def publish(site, body: str) -> None:
    response = client_for(site).post("/api/v1/events", {"event": "lead.submit", "data": {"first_name": body}}, format="json")
    assert response.status_code == 201, response.content


def row(page, webhook: Webhook):
    return page.locator(f"tr[data-webhook='{webhook.id}']")


def wait_until(check, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.3)


def test_a_site_owner_manages_webhooks_in_the_portal(base_url, chromium, site, receiver, workers):
    worker = workers.start(wait=False, AGENTBOT_RETRY_SCHEDULE="0,1")
    page = new_page(chromium, permissions=["clipboard-read", "clipboard-write"])
    url = link(site).replace("http://testserver", base_url)

    # The link opens the portal, and the token leaves the address bar.
    page.goto(url)
    page.wait_for_url(f"{base_url}/portal/")
    assert "#" not in page.url
    assert page.get_by_role("heading", name="Webhooks").is_visible()
    accessible(page, "empty")

    # New webhook: URL, events from the catalogue, format, Save; the secret once, with a copy button.
    page.get_by_role("link", name="New webhook").click()
    page.get_by_label("URL", exact=True).fill(receiver.url)
    page.get_by_label("lead.submit", exact=True).check()
    page.get_by_label("message.created", exact=True).check()
    page.get_by_role("radio", name="agentbot").check()
    page.get_by_label("Description").fill("CRM bridge")
    accessible(page, "new-webhook")
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector("#secret")
    webhook = Webhook.objects.get(site=site)
    assert page.locator("#secret").inner_text() == webhook.secret
    page.get_by_role("button", name="Copy secret").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == webhook.secret
    accessible(page, "secret")
    page.reload()
    assert page.locator("#secret-gone").is_visible() and webhook.secret not in page.content()

    # Send test event: the outcome shows on the page, without a reload.
    page.get_by_role("link", name="Go to the webhook").click()
    workers.wait_ready(worker)
    page.evaluate("window.notReloaded = true")
    page.get_by_role("button", name="Send test event").click()
    page.locator("#test-outcome.succeeded").wait_for(timeout=30_000)
    assert "HTTP 200" in page.locator("#test-outcome").inner_text()
    assert page.evaluate("window.notReloaded") is True
    assert receiver.wait_for(1, timeout=10)[0].headers["x-agentbot-event"] == "webhook.test"
    page.reload()
    accessible(page, "webhook")

    # A receiver that fails: the delivery's attempts, then Retry from its page.
    receiver.responder = lambda n: (500, b'{"error":"down"}')
    publish(site, "Ada")
    failed = None

    def delivery_failed():
        nonlocal failed
        failed = Delivery.objects.filter(webhook=webhook, event__type="lead.submit", status="failed").first()
        return failed is not None

    wait_until(delivery_failed, what="the delivery to fail")
    page.goto(f"{base_url}/portal/webhooks/{webhook.id}?status=failed")
    page.get_by_role("link", name=failed.id).click()
    attempts = page.locator("#attempts li.attempt")
    assert attempts.count() == 2 and "HTTP 500" in attempts.first.inner_text()
    assert '{"error":"down"}' in page.locator("#attempts").inner_text()
    accessible(page, "delivery")
    receiver.responder = lambda n: (200, b'{"ok":true}')
    page.get_by_role("button", name="Retry").click()
    wait_until(lambda: Delivery.objects.get(pk=failed.pk).status == "succeeded", what="the retry to succeed")
    page.reload()
    assert page.locator("#attempts li.attempt").count() == 3 and "HTTP 200" in page.locator("#attempts").inner_text()

    # The row's Enabled switch pauses: an event published meanwhile arrives once it is on again.
    page.goto(f"{base_url}/portal/")
    switch = row(page, webhook).get_by_role("switch", name="Enabled")
    assert switch.get_attribute("aria-checked") == "true"
    switch.click()
    page.wait_for_selector(f"tr[data-webhook='{webhook.id}'] [role=switch][aria-checked=false]")
    accessible(page, "webhooks")
    before = len(receiver.received)
    publish(site, "Grace")
    time.sleep(2)  # the worker and its 0.5 s sweep had time to send it, had the webhook not been paused
    assert len(receiver.received) == before
    row(page, webhook).get_by_role("switch", name="Enabled").focus()  # by keyboard this time
    page.keyboard.press("Space")
    page.wait_for_selector(f"tr[data-webhook='{webhook.id}'] [role=switch][aria-checked=true]")
    (arrived,) = receiver.wait_for(before + 1, timeout=30)[before:]
    assert b"Grace" in arrived.body

    page.get_by_role("link", name="Event catalogue").click()
    assert page.get_by_role("heading", name="message.created").is_visible()
    accessible(page, "events")

    # × Delete, with a confirmation.
    page.goto(f"{base_url}/portal/")
    row(page, webhook).get_by_role("button", name="Delete").click()
    page.get_by_role("heading", name="Delete this webhook?").wait_for()
    accessible(page, "delete")
    assert Webhook.objects.filter(pk=webhook.pk).exists()
    page.get_by_role("button", name="Delete").click()
    page.locator("#no-webhooks").wait_for()
    assert not Webhook.objects.filter(pk=webhook.pk).exists()


def test_read_only_viewers_expired_links_other_sites_and_framing_are_refused(base_url, chromium, site):
    mine = WebhookFactory(site=site, url="https://hooks.example.com/mine")
    other = SiteFactory()
    theirs = WebhookFactory(site=other, url="https://hooks.example.com/theirs")

    # A read-only link: everything shows, nothing changes.
    page = new_page(chromium)
    page.goto(link(site, read_only=True).replace("http://testserver", base_url))
    page.wait_for_url(f"{base_url}/portal/")
    assert page.locator("#read-only-badge").is_visible()
    assert page.get_by_role("link", name="New webhook").count() == 0
    assert row(page, mine).get_by_role("switch", name="Enabled").is_disabled()
    page.goto(f"{base_url}/portal/webhooks/new")
    assert page.locator("#refused").is_visible()
    page.goto(f"{base_url}/portal/webhooks/{mine.id}")
    assert page.get_by_role("button", name="Send test event").count() == 0
    accessible(page, "read-only-webhook")

    # Another site's webhook is not found.
    response = page.goto(f"{base_url}/portal/webhooks/{theirs.id}")
    assert response.status == 404 and page.locator("#not-found").is_visible()
    accessible(page, "not-found")

    # A used link, and an expired one: a clear page.
    used = link(site).replace("http://testserver", base_url)
    page.goto(used)
    page.wait_for_url(f"{base_url}/portal/")
    page.goto("about:blank")  # a link differing only in its #fragment is otherwise no new page load
    page.goto(used)
    assert "already used" in page.locator("#link-refused").inner_text()
    expired = link(site).replace("http://testserver", base_url)
    PortalLink.objects.filter(used_at__isnull=True).update(expires_at=timezone.now() - timedelta(seconds=1))
    page.goto("about:blank")
    page.goto(expired)
    assert "expired" in page.locator("#link-refused").inner_text()
    accessible(page, "link-refused")

    # A viewer logs in, sees their site in Portuguese, and changes nothing.
    user = get_user_model().objects.create_user("vera", password=PASSWORD)
    SiteMembership.objects.create(user=user, site=site, role="viewer")
    page = new_page(chromium, locale="pt-BR")
    page.goto(f"{base_url}/portal/login")
    accessible(page, "login")
    page.get_by_label("Usuário").fill("vera")
    page.get_by_label("Senha").fill(PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    page.wait_for_url(f"{base_url}/portal/")
    assert page.get_by_role("heading", name="Webhooks").is_visible()
    assert "Somente leitura" in page.content() and "Sucesso (24 h)" in page.content()
    assert row(page, mine).get_by_role("switch", name="Ativado").is_disabled()
    assert page.get_by_role("button", name="Excluir").count() == 0
    accessible(page, "pt-br")
    status = page.evaluate(
        """async (url) => (await fetch(url, {method: 'POST', body: new URLSearchParams({enabled: 'off',
            csrfmiddlewaretoken: document.querySelector('[name=csrfmiddlewaretoken]').value})})).status""",
        f"/portal/webhooks/{mine.id}/enabled",
    )
    assert status == 403
    mine.refresh_from_db()
    assert mine.enabled

    # Framing: the service's own pages may frame the portal, another origin may not.
    page = browser_page_for_framing(chromium)
    own = f"{base_url}/frame-test"
    html = f'<!doctype html><title>host</title><iframe title="portal" src="{base_url}/portal/login"></iframe>'
    page.route(own, lambda route: route.fulfill(status=200, content_type="text/html", body=html))
    page.goto(own)
    page.wait_for_timeout(1000)
    assert framed_portal(page), "the service's own origin may frame the portal"
    # Another origin, served from this machine by a real server (a page the browser made up would
    # count as public, and the private-network rules rather than the portal's headers would refuse it).
    with host_page(html) as evil:
        page.goto(evil)
        page.wait_for_timeout(1000)
        assert not framed_portal(page), "another origin must not frame the portal"


@contextmanager
def host_page(html: str):
    """A page of another origin (http://127.0.0.1:<another port>/) that frames the portal."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def browser_page_for_framing(browser):
    # No bypass_csp here: frame-ancestors is what is being checked.
    page = browser.new_context().new_page()
    page.set_default_timeout(20_000)
    return page


def framed_portal(page) -> bool:
    frames = [f for f in page.frames if f != page.main_frame]
    if not frames:
        return False
    try:
        return frames[0].locator("form button[type=submit]").count() > 0
    except Exception:  # a blocked frame is an error page that may not be readable
        return False


def test_a_host_app_on_an_allowed_origin_embeds_the_portal(base_url, chromium, site, settings):
    """The whole embedding: a host page of another site frames the link; the portal opens inside,
    and a change made there holds (cookies travel with DJANGO_COOKIE_SAMESITE=None)."""
    settings.SESSION_COOKIE_SAMESITE = settings.CSRF_COOKIE_SAMESITE = "None"
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True  # browsers take Secure from localhost
    webhook = WebhookFactory(site=site, url="https://hooks.example.com/embedded")
    portal_url = link(site).replace("http://testserver", base_url)
    html = (
        f'<!doctype html><title>host app</title><iframe title="Webhooks" src="{portal_url}" width="1200" height="800"></iframe>'
    )
    with host_page(html) as host:
        portal_settings_update(site=site, allowed_origins=[host.rstrip("/")])
        page = browser_page_for_framing(chromium)
        page.goto(host)
        frame = page.frame_locator("iframe[title=Webhooks]")
        frame.get_by_role("heading", name="Webhooks").wait_for()
        frame.locator(f"tr[data-webhook='{webhook.id}']").get_by_role("switch", name="Enabled").click()
        frame.locator(f"tr[data-webhook='{webhook.id}'] [role=switch][aria-checked=false]").wait_for()
    webhook.refresh_from_db()
    assert webhook.paused
