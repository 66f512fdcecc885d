"""The delivery log in the admin: what was sent, what each receiver answered, and the operations
dashboard. Read-only but for "retry", through the service. Also registers the webhook admin, with
its deliveries (subscriptions/admin.py holds the rest of it)."""

import logging
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from core.admin import ObjectActionsMixin
from core.charts import hourly_chart
from core.logging import log_delivery
from deliveries.formats import get_format
from deliveries.formats.preview import webhook_test_preview
from deliveries.formats.types import Envelope
from deliveries.models import Delivery, Event
from deliveries.selectors import (
    METRICS_WINDOW,
    attempt_stats,
    deliveries_by_status,
    deliveries_per_hour,
    deliveries_with_waiting_behind,
    due_backlog,
    webhooks_with_health,
)
from deliveries.services import operator
from subscriptions import admin as subscriptions_admin
from subscriptions.admin import health_html
from subscriptions.event_types import CATALOGUE
from subscriptions.models import Webhook
from subscriptions.selectors import webhook_states, webhooks_by_url_part, webhooks_failing

logger = logging.getLogger(__name__)

# Response bodies are stored capped (AGENTBOT_RESPONSE_BODY_CAP); the page shows less of each.
SHOWN_BODY_CHARS = 4096


def body_as_sent(delivery: Delivery) -> str:
    """The request body of the delivery, rendered again: formats are pure functions of the event,
    so this is byte for byte what every attempt sent."""
    event = delivery.event
    envelope = Envelope.of(event.id, event.type, event.site_id, event.created_at, event.data)
    return get_format(delivery.webhook.format).render(envelope).decode("utf-8")


def capped(text: str, limit: int = SHOWN_BODY_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}\n… ({len(text) - limit} more characters not shown)"


class EventTypeFilter(admin.SimpleListFilter):
    """From the catalogue, not from the table: no DISTINCT over every event on each page view."""

    title = "event type"
    parameter_name = "event_type"
    field = "event__type"

    def lookups(self, request, model_admin):
        return [(name, name) for name in CATALOGUE]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class OwnTypeFilter(EventTypeFilter):
    field = "type"


@admin.register(Delivery)
class DeliveryAdmin(ObjectActionsMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "event_type",
        "webhook",
        "status_label",
        "last_status_code",
        "attempt_count",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = ["status", EventTypeFilter, "webhook__format", "webhook__site"]
    search_fields = ["=id", "=event__id", "=webhook__id", "webhook__url"]  # the box; get_search_results searches
    search_help_text = _("A delivery, event or webhook id, whole, or part of a webhook's URL.")
    list_select_related = ["event", "webhook"]
    show_full_result_count = False  # the delivery table is large; one count per page view is enough
    actions = ["retry", "skip"]
    readonly_fields = [
        "id",
        "event",
        "webhook",
        "status",
        "ordering_key",
        "waiting_behind_link",
        "attempt_count",
        "next_attempt_at",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "leased_until",
        "created_at",
        "request_as_sent",
        "attempt_timeline",
    ]
    fieldsets = [
        (None, {"fields": readonly_fields[:-2]}),
        ("Request as sent", {"fields": ["request_as_sent"]}),
        ("Attempts", {"fields": ["attempt_timeline"]}),
    ]

    def get_urls(self):
        dashboard = path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="deliveries_delivery_dashboard")
        return [dashboard] + super().get_urls()

    def get_search_results(self, request, queryset, search_term):
        """Each word is a delivery, event or webhook id, whole and exact, or part of a webhook's URL
        (not of a credential URL: see webhooks_by_url_part), and each is found through an index. Django's own search compares `UPPER(id)`, which no index
        serves, and joins every delivery to its webhook for the URL: on a large delivery table,
        a scan of all of it for every search."""
        for word in search_term.split():
            by_url = webhooks_by_url_part(word).values_list("id", flat=True)
            queryset = queryset.filter(Q(id=word) | Q(event_id=word) | Q(webhook_id__in=[word, *by_url]))
        return queryset, False

    def get_queryset(self, request):
        return deliveries_with_waiting_behind(super().get_queryset(request).select_related("event", "webhook"))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def object_actions(self, request, obj):
        return ["retry", "skip"] if obj.status == Delivery.Status.PENDING else ["retry"]

    @admin.display(description=_("waiting behind"))
    def waiting_behind_link(self, obj):
        """The delivery of its ordering key that must succeed or fail before this one is sent."""
        if not obj.waiting_behind:
            return "—"
        url = reverse("admin:deliveries_delivery_change", args=[obj.waiting_behind])
        return format_html('<a href="{}">{}</a>', url, obj.waiting_behind)

    @admin.display(description="event", ordering="event__type")
    def event_type(self, obj):
        return obj.event.type

    @admin.display(description="status", ordering="status")
    def status_label(self, obj):
        return format_html('<span class="console-status {}">{}</span>', obj.status, obj.status)

    @admin.display(description="request")
    def request_as_sent(self, obj):
        last = obj.attempts.order_by("-number").first()
        return render_to_string(
            "admin/deliveries/delivery/request.html",
            {"delivery": obj, "attempt": last, "body": capped(body_as_sent(obj))},
        )

    @admin.display(description="oldest first")
    def attempt_timeline(self, obj):
        attempts = [{"attempt": a, "response_body": capped(a.response_body)} for a in obj.attempts.order_by("number")]
        return render_to_string("admin/deliveries/delivery/timeline.html", {"delivery": obj, "attempts": attempts})

    @admin.action(description="Retry now")
    def retry(self, request, queryset):
        done, busy = 0, 0
        for delivery in queryset:
            try:
                operator.delivery_retry(delivery=delivery)
            except operator.DeliveryBusy:
                busy += 1
                continue
            done += 1
            log_delivery(
                logger,
                logging.INFO,
                "delivery queued again from the admin",
                delivery_id=delivery.id,
                event_id=delivery.event_id,
                webhook_id=delivery.webhook_id,
                operator=request.user.get_username(),
            )
        note = f"; {busy} were being sent already and were left alone" if busy else ""
        self.message_user(
            request, f"Queued {done} deliveries to be sent again now{note}.", messages.WARNING if busy else messages.SUCCESS
        )

    @admin.action(description=_("Skip (end as failed, not sent; the next of its ordering key goes)"))
    def skip(self, request, queryset):
        done, refused = 0, []
        for delivery in queryset:
            try:
                operator.delivery_skip(delivery=delivery, by=request.user.get_username())
            except operator.DeliveryBusy as exc:
                refused.append(f"{delivery.id}: {exc}")
                continue
            done += 1
            log_delivery(
                logger,
                logging.INFO,
                "delivery skipped from the admin",
                delivery_id=delivery.id,
                event_id=delivery.event_id,
                webhook_id=delivery.webhook_id,
                operator=request.user.get_username(),
            )
        note = f" Left alone: {'; '.join(refused)}." if refused else ""
        self.message_user(request, f"Skipped {done} deliveries.{note}", messages.WARNING if refused else messages.SUCCESS)

    def dashboard_view(self, request):
        now = timezone.now()
        by_status: dict[str, int] = dict.fromkeys(Delivery.Status.values, 0)
        for (status, _format), n in deliveries_by_status(since=now - timedelta(hours=24)).items():
            by_status[status] += n
        backlog = due_backlog(now=now)
        context = {
            **self.admin_site.each_context(request),
            "title": "Operations dashboard",
            "opts": self.model._meta,
            "by_status": by_status,
            "attempts": attempt_stats(since=now - METRICS_WINDOW),
            "backlog": backlog,
            "oldest_due_age": backlog.oldest_age(now),
            "webhooks": [(state, state.replace("_", " "), n) for state, n in webhook_states().items()],
            "failing": [(w, health_html(w)) for w in webhooks_failing()],
            "chart": hourly_chart(deliveries_per_hour(now=now), title="All deliveries per hour, last 24 hours"),
        }
        return TemplateResponse(request, "admin/deliveries/dashboard.html", context)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "site", "created_at"]
    list_filter = [OwnTypeFilter, "site"]
    search_fields = ["=id", "=idempotency_key"]  # the box; get_search_results searches
    search_help_text = _("An event id or an idempotency key, whole.")
    show_full_result_count = False
    readonly_fields = ["id", "site", "type", "data", "idempotency_key", "ordering_key", "created_at"]
    fields = readonly_fields

    def get_search_results(self, request, queryset, search_term):
        """Exact matches, found through the primary key and the idempotency key's index (Django's
        own search compares `UPPER(id)` with every event's)."""
        for word in search_term.split():
            queryset = queryset.filter(Q(id=word) | Q(idempotency_key=word))
        return queryset, False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- webhooks, with their deliveries ------------------------------------------------------------
RECENT_DELIVERIES = 20


class RedeliverForm(forms.Form):
    since = forms.DateTimeField(
        label="Failed deliveries created since (UTC)",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def clean_since(self):
        since = self.cleaned_data["since"]
        if since > timezone.now():
            raise ValidationError("pick a time in the past: deliveries created after it are redelivered")
        return since


@admin.register(Webhook)
class WebhookAdmin(subscriptions_admin.WebhookAdmin):
    """The webhook admin of subscriptions, with what concerns its deliveries: the last delivery and
    the last 24 hours in the list, a chart and the newest deliveries on its page, and the actions
    that send (a test event, the failed deliveries again)."""

    list_display = [*subscriptions_admin.WebhookAdmin.list_display]
    list_display[list_display.index("enabled_switch") + 1 : list_display.index("enabled_switch") + 1] = [
        "last_delivery",
        "success_24h",
    ]
    readonly_fields = [*subscriptions_admin.WebhookAdmin.readonly_fields, "test_preview", "deliveries_chart", "recent_deliveries"]
    actions = ["send_test", "redeliver_failed", *subscriptions_admin.WebhookAdmin.actions]

    def get_queryset(self, request):
        return webhooks_with_health(super().get_queryset(request), now=timezone.now())

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return [
            *fieldsets,
            *([] if obj.connector else [("Test event: what arrives", {"fields": ["test_preview"]})]),
            ("Deliveries per hour, last 24 hours", {"fields": ["deliveries_chart"]}),
            (f"Recent deliveries (newest {RECENT_DELIVERIES})", {"fields": ["recent_deliveries"]}),
        ]

    def object_actions(self, request, obj):
        sending = ["redeliver_failed"] if obj.connector else ["send_test", "redeliver_failed"]
        return [*sending, *super().object_actions(request, obj)]

    # --- columns ---------------------------------------------------------------------------
    @admin.display(description="last delivery", ordering="last_delivery_status")
    def last_delivery(self, obj):
        if obj.last_delivery_status is None:
            return "—"
        code = f" · HTTP {obj.last_delivery_code}" if obj.last_delivery_code else ""
        return format_html(
            '<span class="console-status {}">{}</span>{}', obj.last_delivery_status, obj.last_delivery_status, code
        )

    @admin.display(description="success 24 h")
    def success_24h(self, obj):
        if not obj.finished_24h:
            return "—"
        return f"{100 * obj.succeeded_24h // obj.finished_24h}% of {obj.finished_24h}"

    # --- the webhook's page ----------------------------------------------------------------
    @admin.display(description="send test event")
    def test_preview(self, obj):
        return render_to_string("admin/subscriptions/webhook/test_preview.html", {"preview": webhook_test_preview(webhook=obj)})

    @admin.display(description="per clock hour (UTC)")
    def deliveries_chart(self, obj):
        return hourly_chart(deliveries_per_hour(now=timezone.now(), webhook=obj), title="Deliveries per hour, last 24 hours")

    @admin.display(description="newest first")
    def recent_deliveries(self, obj):
        rows = obj.deliveries.select_related("event").order_by("-created_at")[:RECENT_DELIVERIES]
        return render_to_string(
            "admin/subscriptions/webhook/recent_deliveries.html",
            {"deliveries": rows, "all_url": reverse("admin:deliveries_delivery_changelist") + f"?webhook__id__exact={obj.pk}"},
        )

    # --- actions -----------------------------------------------------------------------------
    @admin.action(description="Send a test event", permissions=["change"])
    def send_test(self, request, queryset):
        queryset = self._subscriber_webhooks(request, queryset)
        if not queryset.exists():
            return
        with transaction.atomic():
            events = [operator.webhook_send_test(webhook=w) for w in queryset]
        deliveries = [d for event in events for d in event.deliveries.all()]
        for d in deliveries:
            log_delivery(
                logger,
                logging.INFO,
                "test event sent from the admin",
                delivery_id=d.id,
                event_id=d.event_id,
                webhook_id=d.webhook_id,
                operator=request.user.get_username(),
            )
        self.message_user(
            request,
            f"Sent a webhook.test event to {len(events)} webhook(s): delivery {', '.join(d.id for d in deliveries)}. "
            "Its attempt shows on the webhook's page within seconds, below what it looks like when it arrives.",
            messages.SUCCESS,
        )

    @admin.action(description="Redeliver failed deliveries since a time…", permissions=["change"])
    def redeliver_failed(self, request, queryset):
        form = RedeliverForm(
            request.POST if "apply" in request.POST else None, initial={"since": timezone.now() - timedelta(days=1)}
        )
        if not form.is_valid():
            return TemplateResponse(
                request,
                "admin/subscriptions/webhook/redeliver.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Redeliver failed deliveries",
                    "opts": self.model._meta,
                    "form": form,
                    "webhooks": queryset,
                    "action": "redeliver_failed",
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                },
            )
        since = form.cleaned_data["since"]
        webhooks = list(queryset)
        queued = sum(operator.deliveries_redeliver(webhook=w, since=since) for w in webhooks)
        logger.info(
            "failed deliveries queued again from the admin",
            extra={"webhook_ids": ",".join(w.id for w in webhooks), "count": queued, "operator": request.user.get_username()},
        )
        paused = [w.displayed_url for w in webhooks if w.paused]
        disabled = [w.displayed_url for w in webhooks if not w.enabled and not w.paused]
        note = ""
        if paused:
            note += f" Note: {', '.join(paused)} is paused, so its deliveries wait until it is enabled."
        if disabled:
            note += f" Note: {', '.join(disabled)} was disabled by the service, so its deliveries fail again at once; enable it first."
        self.message_user(
            request,
            f"Queued {queued} failed deliveries of {len(webhooks)} webhook(s), created since {since:%Y-%m-%d %H:%M} UTC, "
            f"to be sent again now.{note}",
            messages.WARNING if note else messages.SUCCESS,
        )
