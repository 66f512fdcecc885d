"""API keys: a key found valid is trusted for AGENTBOT_API_KEY_CACHE_SECONDS, a revocation in the
admin takes effect at once, one made elsewhere within that time."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.models import ApiKey
from core.services import api_key_create

pytestmark = pytest.mark.django_db


def client_with_key(api_client, site):
    key, plain = api_key_create(site=site)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    return key


def test_a_valid_key_is_looked_up_once_within_the_cache_time(api_client, site):
    client_with_key(api_client, site)
    assert api_client.get("/api/v1/webhooks").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert api_client.get("/api/v1/webhooks").status_code == 200
    assert not [q for q in queries if "agentbot_apikey" in q["sql"]]


def test_a_key_revoked_in_the_admin_is_refused_at_once(api_client, admin_client, site):
    key = client_with_key(api_client, site)
    assert api_client.get("/api/v1/webhooks").status_code == 200
    page = f"/admin/core/apikey/{key.pk}/change/"
    now = timezone.now()
    response = admin_client.post(
        page,
        {
            "site": site.pk,
            "name": key.name,
            "revoked_at_0": now.strftime("%Y-%m-%d"),
            "revoked_at_1": now.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    refused = api_client.get("/api/v1/webhooks")
    assert refused.status_code == 401 and "not valid" in refused.json()["message"]


def test_a_key_revoked_by_another_process_stops_working_within_the_cache_time(api_client, site, settings):
    settings.AGENTBOT_API_KEY_CACHE_SECONDS = 0.3
    key = client_with_key(api_client, site)
    assert api_client.get("/api/v1/webhooks").status_code == 200
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())  # as another web process's admin would
    time.sleep(0.4)
    assert api_client.get("/api/v1/webhooks").status_code == 401


def test_a_key_whose_site_is_deleted_is_refused_at_once(api_client, site):
    client_with_key(api_client, site)
    assert api_client.get("/api/v1/webhooks").status_code == 200
    site.delete()  # cascades to its keys
    assert api_client.get("/api/v1/webhooks").status_code == 401


@pytest.mark.django_db
def test_the_admin_pages_of_the_moved_models_redirect_from_their_old_app(client):
    """Bookmarks of /admin/agentbot/<model>/ from before core, domain and inbound were apps still lead somewhere."""
    for old, new in [
        ("/admin/agentbot/site/", "/admin/core/site/"),
        ("/admin/agentbot/conversation/conv_x/change/?a=1", "/admin/domain/conversation/conv_x/change/?a=1"),
        ("/admin/agentbot/integration/", "/admin/inbound/integration/"),
    ]:
        response = client.get(old)
        assert (response.status_code, response["Location"]) == (302, new)
