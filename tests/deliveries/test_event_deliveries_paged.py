"""GET /events/{id} pages its deliveries: at most 100 inline, the rest at /events/{id}/deliveries."""

import pytest

from deliveries.api import EVENT_DELIVERIES_SHOWN
from tests.factories import WebhookFactory

pytestmark = pytest.mark.django_db


def test_an_event_with_many_deliveries_shows_the_first_and_pages_the_rest(api, site, settings):
    settings.AGENTBOT_MAX_WEBHOOKS_PER_SITE = 0
    for _ in range(EVENT_DELIVERIES_SHOWN + 20):
        WebhookFactory(site=site, events=["*"])
    posted = api.post("/api/v1/events", {"event": "webhook.test", "data": {}}, format="json").json()

    shown = api.get(f"/api/v1/events/{posted['id']}").json()

    assert len(shown["deliveries"]) == EVENT_DELIVERIES_SHOWN
    assert shown["deliveries_count"] == EVENT_DELIVERIES_SHOWN + 20
    assert shown["deliveries_next"] == f"/api/v1/events/{posted['id']}/deliveries"
    assert posted == shown, "the publish's answer is the same page"
    ids = []
    page = api.get(shown["deliveries_next"], {"page_size": 50}).json()
    while True:
        ids += [d["id"] for d in page["results"]]
        if not page["next"]:
            break
        page = api.get(page["next"]).json()
    assert len(set(ids)) == EVENT_DELIVERIES_SHOWN + 20
    assert {d["id"] for d in shown["deliveries"]} <= set(ids)


def test_an_event_with_few_deliveries_keeps_its_shape_with_nothing_more_to_page(api, site):
    WebhookFactory(site=site, events=["*"])
    posted = api.post("/api/v1/events", {"event": "webhook.test", "data": {}}, format="json").json()
    shown = api.get(f"/api/v1/events/{posted['id']}").json()
    assert len(shown["deliveries"]) == 1 and shown["deliveries_count"] == 1 and shown["deliveries_next"] is None
    listed = api.get(f"/api/v1/events/{posted['id']}/deliveries").json()
    assert [d["id"] for d in listed["results"]] == [shown["deliveries"][0]["id"]]


def test_another_sites_event_deliveries_are_not_found(api, site):
    from tests.conftest import client_for
    from tests.factories import SiteFactory

    WebhookFactory(site=site, events=["*"])
    event_id = api.post("/api/v1/events", {"event": "webhook.test", "data": {}}, format="json").json()["id"]
    assert client_for(SiteFactory()).get(f"/api/v1/events/{event_id}/deliveries").status_code == 404
