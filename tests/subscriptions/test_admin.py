"""The admin as an operations console: create a webhook and see its secret once, see each webhook's
health and deliveries, read what was sent and answered, act, and watch the dashboard."""

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.admin.utils import quote
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core import jsjson
from deliveries.formats import get_format
from deliveries.formats.types import Envelope
from deliveries.models import Attempt, Delivery
from deliveries.services.operator import webhook_send_test
from deliveries.services.publish import event_publish
from subscriptions.models import Webhook

pytestmark = pytest.mark.django_db

WEBHOOKS = "/admin/subscriptions/webhook/"
DELIVERIES = "/admin/deliveries/delivery/"
DASHBOARD = "/admin/deliveries/delivery/dashboard/"


@pytest.fixture
def admin(admin_client):
    return admin_client


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def page(admin, url: str) -> str:
    response = admin.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def delivery_with_attempts(webhook, *, status="failed", codes=(503,), created_at=None) -> Delivery:
    """A delivery of a webhook.test event, finished as `status`, with one attempt per status code."""
    delivery = webhook_send_test(webhook=webhook).deliveries.get()
    changes = dict(
        status=status,
        attempt_count=len(codes),
        last_status_code=codes[-1],
        leased_until=None,
        lease_token=None,
        next_attempt_at=None if status != "pending" else timezone.now(),
    )
    if created_at:
        changes["created_at"] = created_at
    Delivery.objects.filter(pk=delivery.pk).update(**changes)
    for number, code in enumerate(codes, 1):
        Attempt.objects.create(
            delivery=delivery,
            number=number,
            at=timezone.now(),
            status_code=code,
            succeeded=200 <= code < 300,
            request_headers={"X-Agentbot-Signature": f"t=1,v1=sig{number}", "X-Agentbot-Delivery-Id": delivery.id},
            response_headers={"Retry-After": "30"},
            response_body=f"answer {number}",
            duration_ms=40 + number,
            error="" if 200 <= code < 300 else f"HTTP {code}",
        )
    delivery.refresh_from_db()
    return delivery


# --- create, and the secret shown once -----------------------------------------------------------
def test_admin_creates_a_webhook_and_sees_the_secret_once(admin, site):
    response = admin.post(
        f"{WEBHOOKS}add/",
        {
            "site": site.pk,
            "url": "https://crm.example.com/hook",
            "events": ["message.created", "ticket.created"],
            "format": "agentbot",
            "enabled": "on",
            "description": "CRM",
        },
        follow=True,
    )
    webhook = Webhook.objects.get()
    assert webhook.events == ["message.created", "ticket.created"] and webhook.description == "CRM"
    (note,) = [m for m in messages_of(response) if "Signing secret" in m]
    assert webhook.secret in note

    change = page(admin, f"{WEBHOOKS}{webhook.pk}/change/")
    assert webhook.secret not in change and webhook.masked_secret in change
    assert re.fullmatch(r"whsec_….{4}", webhook.masked_secret)
    assert webhook.secret not in page(admin, WEBHOOKS)


def test_admin_refuses_a_bad_url_with_a_message(admin, site, settings):
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    response = admin.post(
        f"{WEBHOOKS}add/", {"site": site.pk, "url": "http://10.0.0.5/hook", "events": ["*"], "format": "agentbot"}
    )
    assert response.status_code == 200 and not Webhook.objects.exists()
    assert "non-public address" in response.content.decode()


def test_enabling_in_the_form_clears_the_reason_the_service_disabled_it(admin, site, webhook_factory):
    webhook = webhook_factory(
        site=site, enabled=False, disabled_reason="the receiver answered 410 Gone", disabled_at=timezone.now()
    )
    admin.post(
        f"{WEBHOOKS}{webhook.pk}/change/",
        {"url": webhook.url, "events": ["*"], "format": "agentbot", "enabled": "on", "description": ""},
    )
    webhook.refresh_from_db()
    assert webhook.enabled and webhook.disabled_reason == "" and webhook.disabled_at is None


# --- the webhook list: health at a glance, without a query per row --------------------------------
def test_webhook_list_shows_last_delivery_success_rate_failures_and_state(admin, site, webhook_factory):
    now = timezone.now()
    healthy = webhook_factory(site=site, url="https://ok.example.com/h")
    delivery_with_attempts(healthy, status="succeeded", codes=(200,))
    delivery_with_attempts(healthy, status="failed", codes=(500, 500))
    delivery_with_attempts(healthy, status="succeeded", codes=(200,))
    delivery_with_attempts(healthy, status="failed", codes=(503,), created_at=now - timedelta(hours=30))  # too old
    webhook_factory(
        site=site,
        url="https://open.example.com/h",
        consecutive_failures=12,
        failing_since=now,
        circuit_opened_at=now,
        circuit_probe_at=now + timedelta(minutes=1),
    )
    webhook_factory(
        site=site,
        url="https://gone.example.com/h",
        enabled=False,
        disabled_reason="the receiver answered 410 Gone",
        disabled_at=now,
    )

    listing = page(admin, WEBHOOKS)
    assert "66% of 3" in listing  # 2 of the 3 finished deliveries of the last 24 h succeeded
    assert "succeeded</span> · HTTP 200" in listing
    assert "circuit open" in listing and "next probe" in listing
    assert "disabled by the service" in listing and "410 Gone" in listing
    assert "healthy" in listing


def test_webhook_list_costs_the_same_queries_for_one_webhook_or_many(admin, site, webhook_factory):
    delivery_with_attempts(webhook_factory(site=site), status="succeeded", codes=(200,))
    with CaptureQueriesContext(connection) as one:
        page(admin, WEBHOOKS)
    for _ in range(6):
        delivery_with_attempts(webhook_factory(site=site), status="failed", codes=(500,))
    with CaptureQueriesContext(connection) as seven:
        page(admin, WEBHOOKS)
    assert len(seven) == len(one)


@pytest.mark.parametrize(
    ("state", "shown", "hidden"),
    [
        ("circuit_open", "open.example.com", "ok.example.com"),
        ("disabled_by_service", "gone.example.com", "open.example.com"),
        ("healthy", "ok.example.com", "gone.example.com"),
    ],
)
def test_webhook_list_filters_by_health(admin, site, webhook_factory, state, shown, hidden):
    now = timezone.now()
    webhook_factory(site=site, url="https://ok.example.com/h")
    webhook_factory(site=site, url="https://open.example.com/h", consecutive_failures=10, circuit_opened_at=now)
    webhook_factory(site=site, url="https://gone.example.com/h", enabled=False, disabled_reason="410 Gone")
    listing = page(admin, f"{WEBHOOKS}?health={state}")
    assert shown in listing and hidden not in listing


def test_webhook_list_searches_url_and_id(admin, site, webhook_factory):
    wanted = webhook_factory(site=site, url="https://wanted.example.com/h")
    webhook_factory(site=site, url="https://other.example.com/h")
    assert "other.example.com" not in page(admin, f"{WEBHOOKS}?q=wanted")
    by_id = page(admin, f"{WEBHOOKS}?q={wanted.id}")
    assert "wanted.example.com" in by_id and "other.example.com" not in by_id


@pytest.mark.parametrize("term", ["delivery id", "event id", "webhook id", "url", "two words"])
def test_delivery_list_finds_a_delivery_by_any_of_its_ids_or_its_webhook_url(admin, site, webhook_factory, term):
    wanted = delivery_with_attempts(webhook_factory(site=site, url="https://wanted.example.com/h"))
    other = delivery_with_attempts(webhook_factory(site=site, url="https://other.example.com/h"))
    query = {
        "delivery id": wanted.id,
        "event id": wanted.event_id,
        "webhook id": wanted.webhook_id,
        "url": "WANTED.example",
        "two words": f"wanted {wanted.id}",
    }[term]
    listing = page(admin, f"{DELIVERIES}?{urlencode({'q': query})}")
    assert wanted.id in listing and other.id not in listing


def test_delivery_search_reads_ids_through_indexes_not_upper_of_every_id(admin, site, webhook_factory):
    delivery = delivery_with_attempts(webhook_factory(site=site))
    with CaptureQueriesContext(connection) as queries:
        page(admin, f"{DELIVERIES}?q={delivery.id}")
    searched = [q["sql"] for q in queries.captured_queries if "deliveries_delivery" in q["sql"] and delivery.id in q["sql"]]
    assert searched and not any("UPPER" in sql for sql in searched), searched


def test_event_list_finds_an_event_by_its_id_or_idempotency_key_without_upper_of_every_id(admin, site):
    keyed, _ = event_publish(site=site, event_type="message.created", data={}, idempotency_key="order-1234")
    other, _ = event_publish(site=site, event_type="message.created", data={})
    for term in (keyed.id, "order-1234"):
        with CaptureQueriesContext(connection) as queries:
            listing = page(admin, f"/admin/deliveries/event/?{urlencode({'q': term})}")
        assert keyed.id in listing and other.id not in listing
        assert not any("UPPER" in q["sql"] for q in queries.captured_queries if "deliveries_event" in q["sql"])


# --- the webhook page ------------------------------------------------------------------------------
def test_webhook_page_lists_recent_deliveries_newest_first_and_charts_the_last_day(admin, site, webhook_factory):
    webhook = webhook_factory(site=site)
    older = delivery_with_attempts(webhook, status="failed", codes=(503,), created_at=timezone.now() - timedelta(hours=3))
    newer = delivery_with_attempts(webhook, status="succeeded", codes=(200,))

    change = page(admin, f"{WEBHOOKS}{webhook.pk}/change/")
    assert change.index(newer.id) < change.index(older.id)
    assert "webhook.test" in change and "503" in change
    start = change.index('<svg class="console-chart-svg"')
    chart = change[start : change.index("</svg>", start)]
    assert chart.count('fill="#2e7d32"') == 1 and chart.count('fill="#c62828"') == 1  # one bar each
    assert "1 succeeded" in change and "1 failed" in change


def test_webhook_page_buttons_run_the_action_on_that_webhook_and_come_back(admin, site, webhook_factory):
    webhook = webhook_factory(site=site)
    other = webhook_factory(site=site)
    change = page(admin, f"{WEBHOOKS}{webhook.pk}/change/")
    for action in ["send_test", "redeliver_failed", "rotate_secret", "disable"]:
        assert f"/act/{action}/" in change
    assert "/act/enable/" not in change

    response = admin.post(f"{WEBHOOKS}{webhook.pk}/act/send_test/", follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:subscriptions_webhook_change", args=[quote(webhook.pk)])
    delivery = Delivery.objects.get(webhook=webhook)
    assert any("webhook.test" in m and delivery.id in m for m in messages_of(response))
    assert not Delivery.objects.filter(webhook=other).exists()

    assert admin.get(f"{WEBHOOKS}{webhook.pk}/act/send_test/").status_code == 405
    assert admin.post(f"{WEBHOOKS}{webhook.pk}/act/delete_selected/").status_code == 404
    assert admin.post(f"{WEBHOOKS}{webhook.pk}/act/enable/").status_code == 404  # not offered while enabled


def test_disable_button_says_what_happens_and_offers_enable(admin, site, webhook_factory):
    webhook = webhook_factory(site=site)
    response = admin.post(f"{WEBHOOKS}{webhook.pk}/act/disable/", follow=True)
    webhook.refresh_from_db()
    assert webhook.enabled is False
    assert any("Paused 1 webhook(s)" in m and "go out in order when they are enabled again" in m for m in messages_of(response))
    assert "/act/enable/" in response.content.decode()


# --- actions ---------------------------------------------------------------------------------------
def test_admin_actions_send_a_test_and_retry_a_delivery(admin, site, webhook_factory):
    webhook = webhook_factory(site=site, events=["ticket.created"])
    response = admin.post(WEBHOOKS, {"action": "send_test", "_selected_action": [webhook.pk]}, follow=True)
    assert any("webhook.test" in m for m in messages_of(response))
    delivery = Delivery.objects.get(webhook=webhook)

    Delivery.objects.filter(pk=delivery.pk).update(status="failed", leased_until=None, lease_token=None, next_attempt_at=None)
    response = admin.post(DELIVERIES, {"action": "retry", "_selected_action": [delivery.pk]}, follow=True)
    assert any("Queued 1 deliveries" in m for m in messages_of(response))
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.next_attempt_at is not None


def test_retry_leaves_a_delivery_that_is_being_sent_and_says_so(admin, site, webhook_factory):
    delivery = webhook_send_test(webhook=webhook_factory(site=site)).deliveries.get()  # leased when enqueued
    response = admin.post(f"{DELIVERIES}{delivery.pk}/act/retry/", follow=True)
    assert any("Queued 0 deliveries" in m and "1 were being sent already" in m for m in messages_of(response))


def test_rotate_action_shows_the_new_secret_once(admin, site, webhook_factory):
    webhook = webhook_factory(site=site)
    old = webhook.secret
    response = admin.post(WEBHOOKS, {"action": "rotate_secret", "_selected_action": [webhook.pk]}, follow=True)
    webhook.refresh_from_db()
    assert webhook.secret != old and webhook.previous_secret == old
    (note,) = [m for m in messages_of(response) if "New signing secret" in m]
    assert re.search(re.escape(webhook.secret), note)
    assert webhook.secret not in page(admin, f"{WEBHOOKS}{webhook.pk}/change/")


def test_a_show_once_secret_never_travels_in_a_cookie_or_a_redirect(admin, site, webhook_factory):
    webhook = webhook_factory(site=site)
    redirect = admin.post(WEBHOOKS, {"action": "rotate_secret", "_selected_action": [webhook.pk]})
    webhook.refresh_from_db()
    assert redirect.status_code == 302 and webhook.secret not in redirect["Location"]
    assert "messages" not in redirect.cookies and webhook.secret not in str(redirect.cookies)
    assert webhook.secret not in redirect.content.decode()
    shown = admin.get(redirect["Location"])
    assert webhook.secret in shown.content.decode() and "messages" not in shown.cookies
    assert webhook.secret not in admin.get(redirect["Location"]).content.decode(), "shown once"


def test_disable_and_enable_actions(admin, site, webhook_factory):
    webhook = webhook_factory(site=site, enabled=False, disabled_reason="410 Gone", disabled_at=timezone.now())
    response = admin.post(WEBHOOKS, {"action": "enable", "_selected_action": [webhook.pk]}, follow=True)
    webhook.refresh_from_db()
    assert webhook.enabled is True and webhook.disabled_reason == ""
    assert any("Enabled 1 webhook(s)" in m for m in messages_of(response))
    admin.post(WEBHOOKS, {"action": "disable", "_selected_action": [webhook.pk]})
    webhook.refresh_from_db()
    assert webhook.enabled is False and webhook.disabled_reason == ""


def test_redeliver_asks_for_a_time_then_requeues_the_failed_deliveries_since(admin, site, webhook_factory):
    webhook = webhook_factory(site=site)
    recent = delivery_with_attempts(webhook, status="failed", codes=(500,), created_at=timezone.now() - timedelta(hours=2))
    old = delivery_with_attempts(webhook, status="failed", codes=(500,), created_at=timezone.now() - timedelta(days=3))
    succeeded = delivery_with_attempts(webhook, status="succeeded", codes=(200,))

    form = admin.post(WEBHOOKS, {"action": "redeliver_failed", "index": "0", "_selected_action": [webhook.pk]})
    assert form.status_code == 200 and 'name="since"' in form.content.decode()
    assert 'class="breadcrumbs"' in form.content.decode() and f'href="{WEBHOOKS}"' in form.content.decode()
    assert Delivery.objects.get(pk=recent.pk).status == "failed"  # nothing happens before the time is given

    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = admin.post(
        WEBHOOKS,
        {"action": "redeliver_failed", "_selected_action": [webhook.pk], "apply": "yes", "since": since},
        follow=True,
    )
    assert any("Queued 1 failed deliveries of 1 webhook(s)" in m for m in messages_of(response))
    assert Delivery.objects.get(pk=recent.pk).status == "pending"
    assert Delivery.objects.get(pk=old.pk).status == "failed"
    assert Delivery.objects.get(pk=succeeded.pk).status == "succeeded"


def test_redeliver_refuses_a_time_in_the_future(admin, site, webhook_factory):
    webhook = webhook_factory(site=site)
    since = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = admin.post(f"{WEBHOOKS}{webhook.pk}/act/redeliver_failed/", {"apply": "yes", "since": since})
    assert response.status_code == 200 and "pick a time in the past" in response.content.decode()


# --- the delivery page -----------------------------------------------------------------------------
def test_delivery_page_shows_the_request_as_sent_and_every_attempt_as_a_timeline(admin, site, webhook_factory):
    webhook = webhook_factory(site=site, format="leads", events=["lead.submit"])
    delivery = delivery_with_attempts(webhook, status="succeeded", codes=(503, 200))
    event = delivery.event
    body = jsjson.dumps(
        get_format("leads").build_body(Envelope.of(event.id, event.type, event.site_id, event.created_at, event.data))
    )

    detail = page(admin, f"{DELIVERIES}{delivery.pk}/change/")
    request = detail[detail.index('id="request-as-sent"') : detail.index('id="attempt-timeline"')]
    assert "t=1,v1=sig2" in request  # the latest attempt's headers, with its signature
    assert body.decode().replace('"', "&quot;") in request
    timeline = detail[detail.index('id="attempt-timeline"') :]
    assert timeline.index("Attempt #1") < timeline.index("Attempt #2")
    for text in ["HTTP 503", "HTTP 200", "41 ms", "42 ms", "answer 1", "answer 2", "Retry-After", "t=1,v1=sig1"]:
        assert text in timeline
    assert webhook.secret not in detail
    assert "/act/retry/" in detail


def test_delivery_page_caps_a_long_response_body(admin, site, webhook_factory):
    delivery = delivery_with_attempts(webhook_factory(site=site), codes=(500,))
    Attempt.objects.filter(delivery=delivery).update(response_body="x" * 10_000)
    detail = page(admin, f"{DELIVERIES}{delivery.pk}/change/")
    assert "x" * 4096 in detail and "x" * 4097 not in detail and "5904 more characters not shown" in detail


def test_delivery_list_filters_by_status_and_event_type(admin, site, webhook_factory):
    webhook = webhook_factory(site=site)
    failed = delivery_with_attempts(webhook, status="failed", codes=(500,))
    ok = delivery_with_attempts(webhook, status="succeeded", codes=(200,))
    listing = page(admin, f"{DELIVERIES}?status__exact=failed&event_type=webhook.test")
    assert failed.id in listing and ok.id not in listing
    assert failed.id not in page(admin, f"{DELIVERIES}?event_type=ticket.created")


# --- the dashboard ---------------------------------------------------------------------------------
def test_dashboard_counts_the_last_day_the_due_backlog_and_the_failing_webhooks(admin, site, webhook_factory):
    now = timezone.now()
    healthy = webhook_factory(site=site, url="https://ok.example.com/h")
    failing = webhook_factory(site=site, url="https://down.example.com/h", consecutive_failures=4, failing_since=now)
    delivery_with_attempts(healthy, status="succeeded", codes=(200,))
    delivery_with_attempts(failing, status="failed", codes=(500,))
    due = delivery_with_attempts(failing, status="pending", codes=(500,))
    Delivery.objects.filter(pk=due.pk).update(next_attempt_at=now - timedelta(minutes=10))

    index = page(admin, "/admin/")
    assert DASHBOARD in index
    dashboard = page(admin, DASHBOARD)
    counts = dashboard[dashboard.index('id="dashboard-deliveries"') : dashboard.index('id="dashboard-backlog"')]
    assert re.search(r"pending</span></a></th><td>1<", counts)
    assert re.search(r"succeeded</span></a></th><td>1<", counts)
    assert re.search(r"failed</span></a></th><td>1<", counts)
    assert "10\xa0minutes" in dashboard  # the oldest due delivery's age
    failing_table = dashboard[dashboard.index('id="failing-webhooks"') :]
    assert "down.example.com" in failing_table and "ok.example.com" not in failing_table
    assert '<svg class="console-chart-svg"' in dashboard


def row_controls(html: str, webhook_id: str) -> tuple[str, str]:
    """The row's switch (<button …>) and × (<a …>) of `webhook_id` in the list's HTML."""
    switch = re.search(rf'<button [^>]*formaction="[^"]*/{webhook_id}/act/[^"]*"[^>]*>', html)
    cross = re.search(rf'<a class="row-delete" href="[^"]*/{webhook_id}/delete/"[^>]*>', html)
    return (switch.group(0) if switch else ""), (cross.group(0) if cross else "")


def test_each_webhook_row_has_its_own_enabled_switch_and_a_delete_cross(admin, site, webhook_factory):
    on = webhook_factory(site=site, url="https://on.example.com/h")
    off = webhook_factory(site=site, url="https://off.example.com/h", enabled=False)
    listed = page(admin, WEBHOOKS)

    switch_on, cross_on = row_controls(listed, on.pk)
    assert 'role="switch"' in switch_on and 'aria-checked="true"' in switch_on and 'aria-label="Enabled"' in switch_on
    assert f"/{on.pk}/act/disable/?from=list" in switch_on and 'formmethod="post"' in switch_on
    switch_off, _ = row_controls(listed, off.pk)
    assert 'aria-checked="false"' in switch_off and f"/{off.pk}/act/enable/?from=list" in switch_off
    assert 'aria-label="Delete"' in cross_on and ">×</a>" in listed

    # The switch pauses that webhook alone and comes back to the list as it was (filters kept).
    filtered = f"{WEBHOOKS}?format=agentbot"
    response = admin.post(f"{WEBHOOKS}{on.pk}/act/disable/?from=list", HTTP_REFERER=f"http://testserver{filtered}", follow=True)
    assert response.redirect_chain[-1][0] == f"http://testserver{filtered}"
    assert any("Paused 1 webhook" in m for m in messages_of(response))
    on.refresh_from_db()
    off.refresh_from_db()
    assert on.enabled is False and off.enabled is False
    admin.post(f"{WEBHOOKS}{off.pk}/act/enable/?from=list", HTTP_REFERER="https://elsewhere.example/")
    off.refresh_from_db()
    assert off.enabled is True

    # × asks first (Django's delete page), and deleting goes through the service.
    confirm = page(admin, f"{WEBHOOKS}{on.pk}/delete/")
    assert "Are you sure" in confirm and on.url in confirm
    assert Webhook.objects.filter(pk=on.pk).exists()
    admin.post(f"{WEBHOOKS}{on.pk}/delete/", {"post": "yes"})
    assert not Webhook.objects.filter(pk=on.pk).exists()


def test_the_row_controls_speak_brazilian_portuguese(admin, site, webhook_factory):
    webhook = webhook_factory(site=site)
    switch, cross = row_controls(page_pt := admin.get(WEBHOOKS, HTTP_ACCEPT_LANGUAGE="pt-br").content.decode(), webhook.pk)
    assert 'aria-label="Ativado"' in switch and 'title="Pausar este webhook"' in switch
    assert 'aria-label="Excluir"' in cross and "Ativado" in page_pt
