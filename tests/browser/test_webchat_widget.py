"""A visitor chats with the agent through the embedded widget, in a real browser: the demo page
served by uvicorn (Django and Socket.IO in one ASGI app) on the test database."""

import pytest
from playwright.sync_api import expect

from agentbot.celery import app as celery_app
from domain import services as domain
from domain.models import Conversation
from inbound import integrations
from inbound.models import KnowledgeEntry
from tests.browser.conftest import screenshot
from tests.support.asgi_server import AsgiServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

QUESTION = "What are your opening hours?"
ANSWER = "We are open from 9:00 to 18:00, Monday to Friday."


@pytest.fixture
def server(tmp_path):
    server = AsgiServer(tmp_path, AGENTBOT_WEBCHAT_POLL_INTERVAL="0.3")
    yield server
    server.stop()
    celery_app.control.purge()  # the message.created deliveries no worker took


def test_a_visitor_asks_in_the_demo_page_and_sees_the_answer_again_after_a_reload(browser_page, site, server):
    integration = integrations.integration_create(
        site=site, connector_type="webchat", name="Demo chat", allowed_origins=server.url
    )
    KnowledgeEntry.objects.create(site=site, question=QUESTION, answer=ANSWER, keywords="hours, open")
    page = browser_page
    page.goto(f"{server.url}/webchat/demo?integration={integration.id}")

    page.get_by_role("button", name="Open chat").click()
    expect(page.get_by_text("Hi! Ask us anything.")).to_be_visible()
    page.get_by_role("textbox", name="Your message").fill(QUESTION)
    page.keyboard.press("Enter")

    log = page.get_by_role("log")
    expect(log.locator(".msg.visitor")).to_have_text([QUESTION])
    expect(log.locator(".msg.agent")).to_have_text([ANSWER], timeout=20_000)
    screenshot(page, "webchat_demo")
    conversation = Conversation.objects.get(integration=integration)
    assert conversation.channel == "web"
    assert conversation.page_url == f"{server.url}/webchat/demo?integration={integration.id}"

    # The session id kept in localStorage brings the conversation back.
    page.reload()
    page.get_by_role("button", name="Open chat").click()
    expect(log.locator(".msg")).to_have_text([QUESTION, ANSWER])
    assert Conversation.objects.filter(integration=integration).count() == 1

    # A person writes while the panel is closed: a dot on the bubble, the reply in the panel.
    page.get_by_role("button", name="Close chat").first.click()
    domain.message_create(conversation=conversation, sender_type="agent", body="Ana here: anything else?")
    expect(page.locator("#agentbot-webchat .bubble .unread")).to_be_visible()
    page.get_by_role("button", name="Open chat").click()
    expect(log.locator(".msg.agent")).to_have_text([ANSWER, "Ana here: anything else?"])
    expect(page.locator("#agentbot-webchat .bubble .unread")).to_be_hidden()
