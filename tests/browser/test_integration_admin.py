"""An operator registers an integration's webhook with Chat2Desk from the admin, in a real browser,
against a fake Chat2Desk API."""

import pytest
from django.contrib.admin.utils import quote

from inbound import integrations
from tests.browser.conftest import log_in, screenshot
from tests.support.fake_chat2desk import FakeChat2Desk

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def chat2desk():
    fake = FakeChat2Desk()
    yield fake
    fake.close()


def test_operator_registers_the_webhook_and_sees_it_ok(base_url, browser_page, operator, site, chat2desk):
    integration = integrations.integration_create(site=site, name="Support", api_url=chat2desk.url, api_token=chat2desk.token)
    page = browser_page
    log_in(page, base_url, operator)

    page.goto(f"{base_url}/admin/inbound/integration/{quote(integration.pk)}/change/")
    panel = page.locator("#integration-webhook")
    assert "Webhook pending" in panel.inner_text()
    screenshot(page, "integration_unregistered")

    with page.expect_navigation():
        page.get_by_role("button", name="Register webhook", exact=True).click()
    note = page.locator(".messagelist .success").inner_text()
    integration.refresh_from_db()
    assert f"Webhook registered with Chat2Desk at {integration.webhook_registered_at:%Y-%m-%d %H:%M:%S} UTC" in note
    assert "Webhook OK" in panel.inner_text()
    assert page.get_by_role("button", name="Re-register webhook").count() == 1
    (registration,) = chat2desk.registrations.values()
    assert registration.url == f"{base_url}{integration.webhook_path}"
    screenshot(page, "integration_registered")
