"""What an operator does in the admin, in a real browser, against a real worker and receiver: log in,
create a webhook and copy its secret, send a test, read the attempt, retry a failed delivery,
rotate the secret, look at the dashboard."""

import hashlib
import hmac
import time

import pytest

from deliveries.models import Delivery
from subscriptions.models import Webhook
from tests.browser.conftest import log_in, screenshot
from tests.support.receiver import fail_times

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def reload_until(page, selector: str, timeout: float = 30.0) -> None:
    """Reload the page, as a person would, until `selector` shows up."""
    deadline = time.monotonic() + timeout
    while not page.locator(selector).count():
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} did not show on {page.url} within {timeout:g} s")
        time.sleep(0.5)
        page.reload()


def follow(page, name: str) -> None:
    """Click the link called `name` and wait for the page it leads to."""
    with page.expect_navigation():
        page.get_by_role("link", name=name, exact=True).click()


def press(page, name: str) -> None:
    page.get_by_role("button", name=name).click()
    page.wait_for_selector(".messagelist")


def messages(page) -> str:
    return page.locator(".messagelist").inner_text()


def test_operator_creates_a_webhook_sends_a_test_and_reads_the_attempt(base_url, browser_page, operator, site, receiver, workers):
    page = browser_page
    worker = workers.start(wait=False)  # warms up while the operator fills in the form
    log_in(page, base_url, operator)

    page.goto(f"{base_url}/admin/subscriptions/webhook/add/")
    page.select_option("#id_site", site.pk)
    page.fill("#id_url", receiver.url)
    page.get_by_label("All events (*)").check()
    page.select_option("#id_format", "agentbot")
    page.fill("#id_description", "CRM bridge")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    webhook = Webhook.objects.get()
    shown = page.locator(".messagelist code").inner_text()
    assert shown == webhook.secret and "will not be shown again" in messages(page)
    screenshot(page, "webhook_created")

    follow(page, receiver.url)
    assert webhook.masked_secret in page.content() and webhook.secret not in page.content()
    press(page, "Send a test event")
    assert "Sent a webhook.test event to 1 webhook(s)" in messages(page)

    workers.wait_ready(worker)
    (request,) = receiver.wait_for(1, timeout=30)
    reload_until(page, "#recent-deliveries .console-status.succeeded")
    assert "webhook.test" in page.locator("#recent-deliveries").inner_text()
    screenshot(page, "webhook_page")

    delivery = Delivery.objects.get(webhook=webhook)
    follow(page, delivery.id)
    timeline = page.locator("#attempt-timeline").inner_text()
    assert "Attempt #1" in timeline and "HTTP 200" in timeline and "succeeded" in timeline
    sent = page.locator("#request-as-sent").inner_text()
    assert request.headers["x-agentbot-signature"] in sent  # the signature the receiver got
    assert page.locator("#request-as-sent pre").inner_text() == request.body.decode()  # the very bytes
    t, v1 = (part.split("=", 1)[1] for part in request.headers["x-agentbot-signature"].split(","))
    assert hmac.compare_digest(v1, hmac.new(shown.encode(), f"{t}.".encode() + request.body, hashlib.sha256).hexdigest())
    screenshot(page, "delivery_page")


def test_operator_retries_a_failed_delivery_and_rotates_the_secret(
    base_url, browser_page, operator, site, webhook_factory, receiver, workers, settings
):
    settings.AGENTBOT_RETRY_SCHEDULE = [0]  # one attempt, then failed: a retry is one more attempt
    receiver.responder = fail_times(1, status=500)
    webhook = webhook_factory(site=site, url=receiver.url, events=["*"])
    worker = workers.start(wait=False, AGENTBOT_RETRY_SCHEDULE="0")
    page = browser_page
    log_in(page, base_url, operator)

    page.goto(f"{base_url}/admin/subscriptions/webhook/")
    follow(page, receiver.url)
    press(page, "Send a test event")
    workers.wait_ready(worker)
    receiver.wait_for(1, timeout=30)
    reload_until(page, "#recent-deliveries .console-status.failed")

    page.goto(f"{base_url}/admin/deliveries/delivery/?status__exact=failed")
    delivery = Delivery.objects.get(webhook=webhook)
    page.check(f"input[name=_selected_action][value='{delivery.pk}']")
    page.select_option("select[name=action]", "retry")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    assert "Queued 1 deliveries to be sent again now" in messages(page)
    screenshot(page, "delivery_list_retried")

    receiver.wait_for(2, timeout=30)
    page.goto(f"{base_url}/admin/deliveries/delivery/")
    follow(page, delivery.id)
    reload_until(page, "#attempt-timeline li.succeeded")
    timeline = page.locator("#attempt-timeline").inner_text()
    assert timeline.index("Attempt #1") < timeline.index("HTTP 500") < timeline.index("Attempt #2") < timeline.index("HTTP 200")
    screenshot(page, "delivery_timeline")

    follow(page, str(webhook))
    press(page, "Rotate the signing secret (old one valid 24 h)")
    webhook.refresh_from_db()
    assert page.locator(".messagelist code").inner_text() == webhook.secret
    assert "New signing secret" in messages(page)
    page.reload()
    assert webhook.masked_secret in page.content() and webhook.secret not in page.content()

    page.goto(f"{base_url}/admin/")
    follow(page, "Operations dashboard")
    assert "succeeded\t1" in page.locator("#dashboard-deliveries").inner_text()
    screenshot(page, "dashboard")
    page.goto(f"{base_url}/admin/subscriptions/webhook/")
    assert "healthy" in page.locator("#result_list").inner_text()
    screenshot(page, "webhook_list")
