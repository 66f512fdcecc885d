"""The API docs page renders in a browser that may reach nothing but this service."""

from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_api_docs_render_without_the_internet(base_url, browser_page):
    page = browser_page
    local = urlsplit(base_url).netloc
    elsewhere: list[str] = []

    def only_local(route):
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(f"{base_url}/api/v1/docs")
    page.get_by_text("Create a webhook").first.wait_for()
    page.get_by_text("Publish an event to every subscribed webhook").first.click()
    page.get_by_text("Example Value").first.wait_for()
    assert not elsewhere, f"the docs page asked other hosts for {elsewhere}"
    screenshot(page, "api_docs")
