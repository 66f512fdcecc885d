import pytest
from django.test import Client

from portal.services import portal_link_create
from tests.factories import SiteFactory


def open_link(client: Client, token: str):
    """What the landing page's script does: post the token from the URL's fragment."""
    return client.post("/portal/enter", {"token": token})


@pytest.fixture
def portal(site):
    """A browser-like client in an editor's portal session of `site` (opened by a link)."""
    client = Client(enforce_csrf_checks=False)
    _, token = portal_link_create(site=site)
    assert open_link(client, token).status_code == 302
    return client


@pytest.fixture
def read_only_portal(site):
    client = Client()
    _, token = portal_link_create(site=site, read_only=True)
    open_link(client, token)
    return client


@pytest.fixture
def other_site(db):
    return SiteFactory()
