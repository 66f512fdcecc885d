"""Webhooks in the admin: a list that shows each endpoint's health, a page with its deliveries, and
actions that call the services and say what happened."""

import logging
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from agentbot.metrics import WEBHOOK_STATES, deliveries_per_hour, webhooks_with_health
from core.admin import ObjectActionsMixin
from core.charts import hourly_chart
from core.logging import log_delivery
from deliveries import services as delivery_services
from deliveries.preview import webhook_test_preview
from subscriptions import services
from subscriptions.event_types import ALL_EVENTS, SUBSCRIPTION_NAMES
from subscriptions.models import CREDENTIAL_URL_FORMATS, SUBSCRIBER_FORMATS, Webhook
from subscriptions.selectors import webhook_waiting_count

logger = logging.getLogger(__name__)

EVENT_CHOICES = [(ALL_EVENTS, "All events (*)")] + [(name, name) for name in SUBSCRIPTION_NAMES]
EDITABLE = ["url", "events", "format", "enabled", "description"]
RECENT_DELIVERIES = 20


class WebhookForm(forms.ModelForm):
    url = forms.CharField(max_length=2048, widget=forms.URLInput(attrs={"size": 80}))
    events = forms.MultipleChoiceField(choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple)
    # The connector formats belong to integrations' reply webhooks, made with the integration.
    format = forms.ChoiceField(choices=[(f.value, f.label) for f in SUBSCRIBER_FORMATS])

    class Meta:
        model = Webhook
        fields = ["site", *EDITABLE]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self._keeps_credential_url():
            # The URL is the channel's credential: never sent back to a browser once given.
            self.initial["url"] = ""
            self.fields["url"].required = False
            self.fields["url"].help_text = gettext(
                "Now %(hint)s. The URL is the channel's credential and is not shown again: leave this empty "
                "to keep it, or paste a new one."
            ) % {"hint": self.instance.url_hint()}

    def _keeps_credential_url(self) -> bool:
        return self.instance.pk is not None and self.instance.url_is_credential

    def _validated(self, validator, field):
        try:
            return validator(self.cleaned_data.get(field))
        except ValidationError as exc:
            raise ValidationError(exc.message_dict.get(field, exc.messages)) from exc

    def clean_url(self):
        if not self.cleaned_data.get("url") and self._keeps_credential_url():
            return self.instance.url
        return self._validated(services.webhook_validate_url, "url")

    def clean_events(self):
        return self._validated(services.webhook_validate_events, "events")

    def clean_format(self):
        return self._validated(services.webhook_validate_format, "format")


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


class HealthFilter(admin.SimpleListFilter):
    title = "health"
    parameter_name = "health"

    def lookups(self, request, model_admin):
        return [(state, state.replace("_", " ")) for state in WEBHOOK_STATES if state != "enabled"]

    def queryset(self, request, queryset):
        state = self.value()
        return queryset.filter(WEBHOOK_STATES[state]) if state in WEBHOOK_STATES else queryset


def _show_secret_once(request, webhook: Webhook, what: str) -> None:
    messages.warning(
        request,
        format_html(
            "{} for {}: <code>{}</code> — copy it now; it will not be shown again.", what, webhook.displayed_url, webhook.secret
        ),
    )


def _ago(moment) -> str:
    return f"{timesince(moment)} ago" if moment else "—"


def health_state(webhook: Webhook) -> tuple[str, str, str]:
    """(css level, state, why or since when) of a webhook: paused, disabled, circuit open, failing
    or healthy."""
    if webhook.paused:
        waiting = webhook_waiting_count(webhook=webhook)  # one count, for paused webhooks only
        return "warning", "paused", f"{waiting} deliver{'y' if waiting == 1 else 'ies'} waiting"
    if not webhook.enabled:
        return "error", "disabled by the service", f"{webhook.disabled_reason} ({_ago(webhook.disabled_at)})"
    if webhook.circuit_open:
        probe = ""
        if webhook.circuit_probe_at:
            now = timezone.now()
            probe = f"; next probe in {timesince(now, webhook.circuit_probe_at)}" if webhook.circuit_probe_at > now else "; probe due now"
        return "error", "circuit open", f"since {_ago(webhook.circuit_opened_at)}{probe}"
    if webhook.consecutive_failures:
        return "warning", "failing", f"{webhook.consecutive_failures} in a row, since {_ago(webhook.failing_since)}"
    return "ok", "healthy", ""


def health_html(webhook: Webhook) -> str:
    level, state, detail = health_state(webhook)
    note = format_html("<br><small>{}</small>", detail) if detail else ""
    return format_html('<span class="console-status {}">{}</span>{}', level, state, note)


@admin.register(Webhook)
class WebhookAdmin(ObjectActionsMixin, admin.ModelAdmin):
    form = WebhookForm
    list_display = [
        "shown_url", "site_key", "format_name", "event_list", "enabled", "last_delivery", "success_24h", "failures_in_a_row", "health",
    ]
    list_filter = ["enabled", HealthFilter, "format", "site"]
    list_select_related = ["site"]
    search_fields = ["url", "=id", "description", "=site__id", "site__name"]
    readonly_fields = [
        "id", "managed_by", "secret_hint", "previous_secret_expires_at", "health_summary", "deliveries_chart", "recent_deliveries",
        "test_preview",
    ]
    actions = ["send_test", "redeliver_failed", "rotate_secret", "enable", "disable"]

    def get_queryset(self, request):
        return webhooks_with_health(super().get_queryset(request), now=timezone.now())

    def get_readonly_fields(self, request, obj=None):
        # A webhook stays on its site: its deliveries and API keys belong there.
        return self.readonly_fields + (["site"] if obj is not None else [])

    def has_change_permission(self, request, obj=None):
        # An integration's reply webhook changes with its integration: here it is read-only.
        return super().has_change_permission(request, obj) and not (obj is not None and obj.connector)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.connector)

    def delete_model(self, request, obj):
        services.webhook_delete(webhook=obj)

    def delete_queryset(self, request, queryset):
        for webhook in self._subscriber_webhooks(request, queryset):
            services.webhook_delete(webhook=webhook)

    def get_fieldsets(self, request, obj=None):
        main = (None, {"fields": ["site", *EDITABLE]})
        if obj is None:
            return [main]
        if obj.connector:
            main = (None, {"fields": ["managed_by", "site", *EDITABLE]})
        return [
            main,
            ("Health", {"fields": ["health_summary"]}),
            ("Signing", {"fields": ["id", "secret_hint", "previous_secret_expires_at"]}),
            *([] if obj.connector else [("Test event: what arrives", {"fields": ["test_preview"]})]),
            ("Deliveries per hour, last 24 hours", {"fields": ["deliveries_chart"]}),
            (f"Recent deliveries (newest {RECENT_DELIVERIES})", {"fields": ["recent_deliveries"]}),
        ]

    def object_actions(self, request, obj):
        if obj.connector:
            return ["redeliver_failed"]
        return ["send_test", "redeliver_failed", "rotate_secret", "disable" if obj.enabled else "enable"]

    # --- columns ---------------------------------------------------------------------------
    @admin.display(description="url", ordering="url")
    def shown_url(self, obj):
        return obj.displayed_url

    @admin.display(description="site", ordering="site")
    def site_key(self, obj):
        return obj.site_id

    @admin.display(description="format", ordering="format")
    def format_name(self, obj):
        return obj.format

    @admin.display(description="events")
    def event_list(self, obj):
        return ", ".join(obj.events)

    @admin.display(description="last delivery", ordering="last_delivery_status")
    def last_delivery(self, obj):
        if obj.last_delivery_status is None:
            return "—"
        code = f" · HTTP {obj.last_delivery_code}" if obj.last_delivery_code else ""
        return format_html('<span class="console-status {}">{}</span>{}', obj.last_delivery_status, obj.last_delivery_status, code)

    @admin.display(description="success 24 h")
    def success_24h(self, obj):
        if not obj.finished_24h:
            return "—"
        return f"{100 * obj.succeeded_24h // obj.finished_24h}% of {obj.finished_24h}"

    @admin.display(description="failures", ordering="consecutive_failures")
    def failures_in_a_row(self, obj):
        return obj.consecutive_failures

    @admin.display(description="health")
    def health(self, obj):
        return health_html(obj)

    # --- the webhook's page ----------------------------------------------------------------
    @admin.display(description=_("managed by"))
    def managed_by(self, obj):
        integration = getattr(obj, "integration", None)
        if integration is None:
            return gettext("an integration that no longer exists")
        return format_html(
            gettext('integration <a href="{url}">{integration}</a>: change it there; its URL, token and state follow.'),
            url=reverse("admin:inbound_integration_change", args=[integration.pk]),
            integration=integration,
        )

    @admin.display(description="secret")
    def secret_hint(self, obj):
        if obj.connector:
            return gettext("the integration's API token (not shown)")
        if obj.format in CREDENTIAL_URL_FORMATS:
            return gettext("not used: nothing is signed, the URL is the credential")
        return obj.masked_secret

    @admin.display(description="send test event")
    def test_preview(self, obj):
        return render_to_string("admin/subscriptions/webhook/test_preview.html", {"preview": webhook_test_preview(webhook=obj)})

    @admin.display(description="now")
    def health_summary(self, obj):
        return render_to_string("admin/subscriptions/webhook/health.html", {"webhook": obj, "state": health_html(obj)})

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

    # --- writes go through the services ----------------------------------------------------
    def save_model(self, request, obj, form, change):
        if change:
            services.webhook_update(webhook=obj, **{name: form.cleaned_data[name] for name in form.changed_data if name in EDITABLE})
            return
        created = services.webhook_create(site=obj.site, **{name: form.cleaned_data[name] for name in EDITABLE})
        obj.pk, obj.secret, obj.created_at = created.pk, created.secret, created.created_at
        obj._state.adding = False
        if obj.format not in CREDENTIAL_URL_FORMATS:
            _show_secret_once(request, obj, "Signing secret")

    # --- actions -----------------------------------------------------------------------------
    def _subscriber_webhooks(self, request, queryset):
        """The queryset without integrations' reply webhooks, which change only with their integration."""
        if queryset.exclude(connector="").exists():
            self.message_user(
                request,
                gettext("Integrations' reply webhooks were left alone: they change with their integration."),
                messages.WARNING,
            )
        return queryset.filter(connector="")

    @admin.action(description="Send a test event", permissions=["change"])
    def send_test(self, request, queryset):
        queryset = self._subscriber_webhooks(request, queryset)
        if not queryset.exists():
            return
        with transaction.atomic():
            events = [delivery_services.webhook_send_test(webhook=w) for w in queryset]
        deliveries = [d for event in events for d in event.deliveries.all()]
        for d in deliveries:
            log_delivery(logger, logging.INFO, "test event sent from the admin", delivery_id=d.id, event_id=d.event_id,
                         webhook_id=d.webhook_id, operator=request.user.get_username())
        self.message_user(
            request,
            f"Sent a webhook.test event to {len(events)} webhook(s): delivery {', '.join(d.id for d in deliveries)}. "
            "Its attempt shows on the webhook's page within seconds, below what it looks like when it arrives.",
            messages.SUCCESS,
        )

    @admin.action(description="Redeliver failed deliveries since a time…", permissions=["change"])
    def redeliver_failed(self, request, queryset):
        form = RedeliverForm(request.POST if "apply" in request.POST else None, initial={"since": timezone.now() - timedelta(days=1)})
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
        queued = sum(delivery_services.deliveries_redeliver(webhook=w, since=since) for w in webhooks)
        logger.info("failed deliveries queued again from the admin", extra={
            "webhook_ids": ",".join(w.id for w in webhooks), "count": queued, "operator": request.user.get_username()})
        paused = [w.url for w in webhooks if w.paused]
        disabled = [w.url for w in webhooks if not w.enabled and not w.paused]
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

    @admin.action(description="Rotate the signing secret (old one valid 24 h)", permissions=["change"])
    def rotate_secret(self, request, queryset):
        for webhook in self._subscriber_webhooks(request, queryset):
            _show_secret_once(request, services.webhook_rotate_secret(webhook=webhook), "New signing secret")

    @admin.action(description="Enable (resume delivery)", permissions=["change"])
    def enable(self, request, queryset):
        webhooks = [services.webhook_update(webhook=w, enabled=True) for w in self._subscriber_webhooks(request, queryset)]
        self.message_user(
            request,
            f"Enabled {len(webhooks)} webhook(s): the deliveries that waited go out in order, and new events are sent.",
            messages.SUCCESS,
        )

    @admin.action(description="Pause (deliveries wait until enabled)", permissions=["change"])
    def disable(self, request, queryset):
        webhooks = [services.webhook_update(webhook=w, enabled=False) for w in self._subscriber_webhooks(request, queryset)]
        self.message_user(
            request,
            f"Paused {len(webhooks)} webhook(s): nothing is sent to them; their pending deliveries and those of new "
            "events wait, and go out in order when they are enabled again.",
            messages.SUCCESS,
        )
