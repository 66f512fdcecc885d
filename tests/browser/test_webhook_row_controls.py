"""The webhook list's row controls in a real browser, found by their accessible names as a screen
reader finds them: the Enabled switch of one row pauses that webhook alone, × asks before deleting."""

import pytest

from subscriptions.models import Webhook
from tests.browser.conftest import log_in, screenshot
from tests.factories import WebhookFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def row(page, url: str):
    return page.get_by_role("row").filter(has_text=url)


def test_a_row_switch_pauses_that_webhook_and_the_cross_deletes_after_confirming(base_url, browser_page, operator, site):
    page = browser_page
    first = WebhookFactory(site=site, url="https://first.example.com/hook")
    second = WebhookFactory(site=site, url="https://second.example.com/hook")
    log_in(page, base_url, operator)
    page.goto(f"{base_url}/admin/subscriptions/webhook/?format=agentbot")

    switch = row(page, first.url).get_by_role("switch", name="Enabled")
    assert switch.get_attribute("aria-checked") == "true"
    switch.focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")  # keyboard alone
    assert page.url.endswith("/admin/subscriptions/webhook/?format=agentbot"), "back to the list as it was"
    assert row(page, first.url).get_by_role("switch", name="Enabled").get_attribute("aria-checked") == "false"
    assert row(page, second.url).get_by_role("switch", name="Enabled").get_attribute("aria-checked") == "true"
    assert Webhook.objects.get(pk=first.pk).enabled is False and Webhook.objects.get(pk=second.pk).enabled is True
    screenshot(page, "webhook-row-controls")

    with page.expect_navigation():
        row(page, second.url).get_by_role("link", name="Delete").click()
    assert Webhook.objects.filter(pk=second.pk).exists(), "× asks first"
    with page.expect_navigation():
        page.get_by_role("button", name="Yes, I’m sure").click()
    assert not Webhook.objects.filter(pk=second.pk).exists()
    assert row(page, first.url).count() == 1
