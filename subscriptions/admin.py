from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from subscriptions import services
from subscriptions.event_types import ALL_EVENTS, SUBSCRIBABLE
from subscriptions.models import Webhook, generate_secret

EVENT_CHOICES = [(ALL_EVENTS, "All events (*)")] + [(name, name) for name in SUBSCRIBABLE]


class WebhookForm(forms.ModelForm):
    url = forms.CharField(max_length=2048, widget=forms.URLInput(attrs={"size": 80}))
    events = forms.MultipleChoiceField(choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = Webhook
        fields = ["site", "url", "events", "format", "enabled", "description"]

    def _validated(self, validator, field):
        try:
            return validator(self.cleaned_data.get(field))
        except ValidationError as exc:
            raise ValidationError(exc.message_dict.get(field, exc.messages)) from exc

    def clean_url(self):
        return self._validated(services.webhook_validate_url, "url")

    def clean_events(self):
        return self._validated(services.webhook_validate_events, "events")


def _show_secret_once(request, webhook: Webhook, what: str) -> None:
    messages.warning(
        request,
        format_html(
            "{} for {}: <code>{}</code> — copy it now; it will not be shown again.", what, webhook.url, webhook.secret
        ),
    )


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    form = WebhookForm
    list_display = ["url", "site", "format", "event_list", "enabled", "created_at"]
    list_filter = ["enabled", "format", "site"]
    search_fields = ["url", "id", "description"]
    readonly_fields = ["id", "secret_hint", "previous_secret_expires_at", "disabled_reason", "disabled_at", "recent_deliveries"]
    actions = ["send_test", "rotate_secret", "enable", "disable"]

    def get_fieldsets(self, request, obj=None):
        main = (None, {"fields": ["site", "url", "events", "format", "enabled", "description"]})
        if obj is None:
            return [main]
        return [
            main,
            ("Signing", {"fields": ["id", "secret_hint", "previous_secret_expires_at"]}),
            ("State", {"fields": ["disabled_reason", "disabled_at"]}),
            ("Recent deliveries", {"fields": ["recent_deliveries"]}),
        ]

    @admin.display(description="events")
    def event_list(self, obj):
        return ", ".join(obj.events)

    @admin.display(description="secret")
    def secret_hint(self, obj):
        return obj.masked_secret

    @admin.display(description="")
    def recent_deliveries(self, obj):
        rows = obj.deliveries.select_related("event").order_by("-created_at")[:20]
        if not rows:
            return "No deliveries yet."
        body = format_html_join(
            "",
            "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:deliveries_delivery_change", args=[d.pk]),
                    d.id,
                    d.event.type,
                    d.status,
                    d.last_status_code or "—",
                    d.attempt_count,
                    d.next_attempt_at or "—",
                )
                for d in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>delivery</th><th>event</th><th>status</th><th>HTTP</th>"
            "<th>attempts</th><th>next retry</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    def save_model(self, request, obj, form, change):
        if not change:
            obj.secret = generate_secret()
        if change and "enabled" in form.changed_data and obj.enabled:
            obj.disabled_reason, obj.disabled_at = "", None
        super().save_model(request, obj, form, change)
        if not change:
            _show_secret_once(request, obj, "Signing secret")

    @admin.action(description="Send a test event")
    def send_test(self, request, queryset):
        from deliveries.services import webhook_send_test

        with transaction.atomic():
            events = [webhook_send_test(webhook=w) for w in queryset]
        self.message_user(request, f"Sent a webhook.test event to {len(events)} webhook(s); see their deliveries.")

    @admin.action(description="Rotate the signing secret (old one valid 24 h)")
    def rotate_secret(self, request, queryset):
        for webhook in queryset:
            _show_secret_once(request, services.webhook_rotate_secret(webhook=webhook), "New signing secret")

    @admin.action(description="Enable")
    def enable(self, request, queryset):
        count = queryset.update(enabled=True, disabled_reason="", disabled_at=None)
        self.message_user(request, f"Enabled {count} webhook(s).")

    @admin.action(description="Disable")
    def disable(self, request, queryset):
        count = queryset.update(enabled=False)
        self.message_user(request, f"Disabled {count} webhook(s); their new events are not sent until re-enabled.")
