"""Webhooks in the admin: the form, the list with each endpoint's health, and the actions of
subscriptions (rotate the secret, enable, pause, delete) that call the services and say what
happened. deliveries/admin.py registers it, with what concerns deliveries added (their columns,
chart and log on the webhook's page, send a test event, redeliver)."""

import logging

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince
from django.utils.translation import gettext, pgettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from core.admin import ObjectActionsMixin, secrets_show_once
from subscriptions import services
from subscriptions.event_types import ALL_EVENTS, SUBSCRIPTION_NAMES
from subscriptions.filters import filter_matches
from subscriptions.models import CREDENTIAL_URL_FORMATS, SUBSCRIBER_FORMATS, Webhook, WebhookOrdering
from subscriptions.selectors import WEBHOOK_STATES, webhook_rate_held_until, webhook_waiting_count, webhooks_by_url_part

logger = logging.getLogger(__name__)

EVENT_CHOICES = [(ALL_EVENTS, "All events (*)")] + [(name, name) for name in SUBSCRIPTION_NAMES]
EDITABLE = ["url", "exchange", "routing_key", "events", "format", "ordering", "enabled", "description"]
CONTROL_FORM_FIELDS = [
    "headers",
    "auth_type",
    "auth_username",
    "auth_token_url",
    "auth_client_id",
    "auth_scope",
    "auth_audience",
    "auth_password",
    "filter",
    "rate_limit_count",
    "rate_limit_period",
    "client_cert_pem",
    "client_key_pem",
    "server_ca_pem",
]
# The admin's names of the TLS fields (write-only: their model fields are not editable).
TLS_FORM_FIELDS = {"client_cert_pem": "tls_client_cert", "client_key_pem": "tls_client_key", "server_ca_pem": "tls_ca_cert"}


class WebhookForm(forms.ModelForm):
    # Text, not a URL input: a browser's URL check knows http(s) but not a broker's amqp(s).
    url = forms.CharField(
        max_length=2048,
        widget=forms.TextInput(attrs={"size": 80}),
        help_text=_("https://… to POST to, or amqps://user:password@host:port/vhost to publish to a RabbitMQ broker."),
    )
    exchange = forms.CharField(
        max_length=255, required=False, help_text=_("Broker URLs only. Empty: the default exchange (routes by queue name).")
    )
    routing_key = forms.CharField(
        max_length=255,
        required=False,
        strip=False,
        help_text=_("Broker URLs only. Empty: the event's type, as in message.created."),
    )
    events = forms.MultipleChoiceField(choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple)
    # The connector formats belong to integrations' reply webhooks, made with the integration.
    format = forms.ChoiceField(choices=[(f.value, f.label) for f in SUBSCRIBER_FORMATS])
    ordering = forms.ChoiceField(
        choices=[
            (WebhookOrdering.NONE, _("None: every delivery on its own, concurrently (fastest)")),
            (WebhookOrdering.KEY, _("Per ordering key: one at a time per key, in publish order")),
            (WebhookOrdering.WEBHOOK, _("Whole webhook: one at a time, in publish order")),
        ],
        initial=WebhookOrdering.NONE,
        required=False,  # left out: kept as it is (a new webhook's: none)
        help_text=_(
            "Key: the events of one conversation (or of one ordering_key given to the API) arrive one at a time, "
            "each after the one before it succeeded or failed. A failing delivery holds up only its own key."
        ),
    )
    # --- delivery controls (subscriptions/controls.py, subscriptions/filters.py) ---
    headers = forms.JSONField(
        required=False,
        label=_("Headers"),
        help_text=_(
            'Added to every request, as {"X-Tenant": "acme"}. Signatures, event, delivery id and content type are the service\'s own.'
        ),
    )
    auth_type = forms.ChoiceField(
        label=_("Authentication"),
        choices=[
            ("none", _("None")),
            ("basic", _("HTTP Basic")),
            ("bearer", _("Bearer token")),
            ("oauth2", _("OAuth2 client credentials")),
        ],
        initial="none",
        required=False,
    )
    auth_username = forms.CharField(label=_("Basic: username"), required=False, max_length=2048)
    auth_token_url = forms.CharField(label=_("OAuth2: token URL"), required=False, max_length=2048)
    auth_client_id = forms.CharField(label=_("OAuth2: client id"), required=False, max_length=2048)
    auth_scope = forms.CharField(label=_("OAuth2: scope"), required=False, max_length=2048)
    auth_audience = forms.CharField(label=_("OAuth2: audience"), required=False, max_length=2048)
    auth_password = forms.CharField(
        label=_("Password, token or client secret"),
        required=False,
        max_length=2048,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Stored encrypted and never shown again. Leave empty to keep the stored one."),
    )
    filter = forms.JSONField(
        required=False,
        label=_("Event filter"),
        help_text=_('Only events whose data matches, as {"channel": {"$in": ["whatsapp", "telegram"]}}. Empty: every event.'),
    )
    rate_limit_count = forms.IntegerField(label=_("Rate limit"), required=False, min_value=1, max_value=10_000)
    rate_limit_period = forms.ChoiceField(
        label=_("Rate limit per"),
        choices=[("per_second", _("second")), ("per_minute", _("minute"))],
        initial="per_second",
        required=False,
    )
    client_cert_pem = forms.CharField(
        label=_("Client certificate (PEM)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("For mutual TLS, with its key. Not shown again; leave empty to keep the stored one."),
    )
    client_key_pem = forms.CharField(
        label=_("Client certificate key (PEM)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Stored encrypted and never shown again; leave empty to keep the stored one."),
    )
    server_ca_pem = forms.CharField(
        label=_("Server CA (PEM)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Trust this CA for the webhook's server instead of the public ones. Leave empty to keep."),
    )

    class Meta:
        model = Webhook
        fields = ["site", *EDITABLE]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        webhook = self.instance
        auth = webhook.auth or {}
        self.initial.setdefault("auth_type", auth.get("type", "none"))
        for name in ("username", "token_url", "client_id", "scope", "audience"):
            self.initial.setdefault(f"auth_{name}", auth.get(name, ""))
        if webhook.rate_limit:
            ((period, count),) = webhook.rate_limit.items()
            self.initial.setdefault("rate_limit_period", period)
            self.initial.setdefault("rate_limit_count", count)
        for name, model_name in TLS_FORM_FIELDS.items():
            self.initial[name] = ""  # write-only
            if getattr(webhook, model_name):
                self.fields[name].help_text = gettext("One is stored. ") + str(self.fields[name].help_text)
        if self._keeps_credential_url():
            # The URL is the channel's credential: never sent back to a browser once given.
            self.initial["url"] = ""
            self.fields["url"].required = False
            self.fields["url"].help_text = gettext(
                "Now %(hint)s. The URL is the channel's credential and is not shown again: leave this empty "
                "to keep it, or paste a new one."
            ) % {"hint": self.instance.url_hint()}
            if self.instance.is_broker:
                self.fields["url"].help_text = gettext(
                    "Now %(hint)s. The broker URL carries its password and is not shown again: leave this empty "
                    "to keep it, or give a new one (its password written **** keeps the stored password)."
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
        return self.cleaned_data.get("url")

    def clean_ordering(self):
        return self.cleaned_data.get("ordering") or self.instance.ordering or WebhookOrdering.NONE

    def clean_events(self):
        return self._validated(services.webhook_validate_events, "events")

    def clean(self):
        """URL, format, exchange and routing key are checked together (a broker takes only some
        formats); each error goes to its field. What is saved is what was typed: the service
        splits the broker's password off when it stores it."""
        cleaned = super().clean()
        given = {name: cleaned.get(name) for name in services.DESTINATION_FIELDS}
        if given["url"] is None or given["format"] is None:
            return cleaned  # the field's own error is shown
        try:
            services.webhook_validate_destination(
                url=given["url"],
                format=given["format"],
                exchange=given["exchange"] or "",
                routing_key=given["routing_key"] or "",
                stored_password=self.instance.broker_password,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        site = cleaned.get("site") or getattr(self.instance, "site", None) if self.instance._state.adding else None
        if site is not None:
            try:
                services.webhooks_check_room(site=site)
            except ValidationError as exc:
                self.add_error(None, exc.messages)
        self.controls = self._controls(cleaned)
        return cleaned

    def _controls(self, cleaned) -> dict:
        """The delivery controls as the services take them, checked here so each error shows at its field."""
        webhook = self.instance
        kind = cleaned.get("auth_type") or "none"
        auth = {"type": kind}
        for name in {"basic": ("username",), "oauth2": ("token_url", "client_id", "scope", "audience")}.get(kind, ()):
            auth[name] = cleaned.get(f"auth_{name}") or ""
        secret_name = {"basic": "password", "bearer": "token", "oauth2": "client_secret"}.get(kind)
        if secret_name and cleaned.get("auth_password"):
            auth[secret_name] = cleaned["auth_password"]
        count = cleaned.get("rate_limit_count")
        controls = {
            "headers": cleaned.get("headers") or {},
            "auth": auth,
            "filter": cleaned.get("filter"),
            "rate_limit": {cleaned.get("rate_limit_period") or "per_second": count} if count else None,
        }
        controls.update({model_name: cleaned[name] for name, model_name in TLS_FORM_FIELDS.items() if cleaned.get(name)})
        probe = Webhook(url=webhook.url or cleaned.get("url") or "", auth=webhook.auth, auth_secret=webhook.auth_secret)
        for name in services.TLS_FIELDS:
            setattr(probe, name, getattr(webhook, name))
        targets = {"auth": "auth_type", "rate_limit": "rate_limit_count", **{v: k for k, v in TLS_FORM_FIELDS.items()}}
        tls = {k: v for k, v in controls.items() if k in services.TLS_FIELDS}
        for part in [{k: v} for k, v in controls.items() if k not in services.TLS_FIELDS] + ([tls] if tls else []):
            try:
                services.webhook_controls_apply(probe, part)
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    field = targets.get(field, field)
                    self.add_error(field if field in self.fields else None, errors)
        return controls


class HealthFilter(admin.SimpleListFilter):
    title = "health"
    parameter_name = "health"

    def lookups(self, request, model_admin):
        return [(state, state.replace("_", " ")) for state in WEBHOOK_STATES if state != "enabled"]

    def queryset(self, request, queryset):
        state = self.value()
        return queryset.filter(WEBHOOK_STATES[state]) if state in WEBHOOK_STATES else queryset


KNOB = mark_safe('<span class="row-switch-knob"></span>')  # noqa: S308 - a constant


def _icon(enabled: bool) -> str:
    name = "yes" if enabled else "no"
    alt = pgettext("webhook row", "on") if enabled else pgettext("webhook row", "off")
    return format_html('<img src="{}" alt="{}">', static(f"admin/img/icon-{name}.svg"), alt)


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
            probe = (
                f"; next probe in {timesince(now, webhook.circuit_probe_at)}"
                if webhook.circuit_probe_at > now
                else "; probe due now"
            )
        return "error", "circuit open", f"since {_ago(webhook.circuit_opened_at)}{probe}"
    if webhook.consecutive_failures:
        return "warning", "failing", f"{webhook.consecutive_failures} in a row, since {_ago(webhook.failing_since)}"
    return "ok", "healthy", ""


def health_html(webhook: Webhook) -> str:
    level, state, detail = health_state(webhook)
    note = format_html("<br><small>{}</small>", detail) if detail else ""
    return format_html('<span class="console-status {}">{}</span>{}', level, state, note)


class WebhookAdmin(ObjectActionsMixin, admin.ModelAdmin):
    """Not registered here: deliveries/admin.py registers it with the deliveries' parts."""

    form = WebhookForm
    list_display = [
        "shown_url",
        "site_key",
        "format_name",
        "event_list",
        "enabled_switch",
        "failures_in_a_row",
        "health",
        "row_delete",
    ]
    list_filter = ["enabled", HealthFilter, "format", "site"]
    list_select_related = ["site"]
    search_fields = ["=id", "description", "=site__id", "site__name"]  # and part of a URL: get_search_results
    readonly_fields = [
        "id",
        "managed_by",
        "secret_hint",
        "previous_secret_expires_at",
        "health_summary",
        "rate_limit_state",
    ]
    actions = ["rotate_secret", "enable", "disable", "filter_test"]

    def get_search_results(self, request, queryset, search_term):
        """Django's search, and webhooks whose URL holds the whole term, except credential URLs
        (see webhooks_by_url_part)."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            found = found | queryset.filter(pk__in=webhooks_by_url_part(search_term.strip()).values("pk"))
        return found, may_have_duplicates

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
        controls = (_("Delivery controls"), {"fields": CONTROL_FORM_FIELDS})
        if obj is None:
            return [main, controls]
        if obj.connector:
            main = (None, {"fields": ["managed_by", "site", *EDITABLE]})
            return [
                main,
                ("Health", {"fields": ["health_summary"]}),
                ("Signing", {"fields": ["id", "secret_hint", "previous_secret_expires_at"]}),
            ]
        return [
            main,
            (_("Delivery controls"), {"fields": ["rate_limit_state", *CONTROL_FORM_FIELDS]}),
            ("Health", {"fields": ["health_summary"]}),
            ("Signing", {"fields": ["id", "secret_hint", "previous_secret_expires_at"]}),
        ]

    def object_actions(self, request, obj):
        if obj.connector:
            return []
        return ["rotate_secret", "disable" if obj.enabled else "enable", "filter_test"]

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

    @admin.display(description=pgettext_lazy("webhook row", "Enabled"), ordering="enabled")
    def enabled_switch(self, obj):
        """A switch on the row: pressing it pauses or enables this webhook alone (the same action
        as the bulk one, through the object's action URL); back to the list, its filters kept."""
        if obj.connector:  # changes with its integration: shown, not switched here
            return _icon(obj.enabled)
        opts = self.model._meta
        action = "disable" if obj.enabled else "enable"
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_act", args=[obj.pk, action])
        return format_html(
            '<button type="submit" class="row-switch" role="switch" aria-checked="{}" aria-label="{}" title="{}" '
            'formaction="{}?from=list" formmethod="post" formnovalidate>{}</button>',
            "true" if obj.enabled else "false",
            pgettext("webhook row", "Enabled"),
            gettext("Pause this webhook") if obj.enabled else gettext("Enable this webhook"),
            url,
            KNOB,
        )

    @admin.display(description="")
    def row_delete(self, obj):
        """× on the row: Django's delete page for this webhook, which asks to confirm."""
        if obj.connector:
            return ""
        opts = self.model._meta
        return format_html(
            '<a class="row-delete" href="{}" aria-label="{}" title="{}">×</a>',
            reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[obj.pk]),
            pgettext("webhook row", "Delete"),
            gettext("Delete this webhook (asks to confirm)"),
        )

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

    @admin.display(description=_("rate limit"))
    def rate_limit_state(self, obj):
        if not obj.rate_limit:
            return gettext("none: deliveries go out as fast as the receiver takes them")
        ((period, count),) = obj.rate_limit.items()
        shown = gettext("%(count)s per second") if period == "per_second" else gettext("%(count)s per minute")
        held = webhook_rate_held_until(webhook=obj)
        if held is None:
            return shown % {"count": count}
        return gettext("%(limit)s; holding deliveries back: the queued ones go out until %(until)s UTC") % {
            "limit": shown % {"count": count},
            "until": f"{held:%H:%M:%S}",
        }

    @admin.display(description="now")
    def health_summary(self, obj):
        return render_to_string("admin/subscriptions/webhook/health.html", {"webhook": obj, "state": health_html(obj)})

    # --- writes go through the services ----------------------------------------------------
    def save_model(self, request, obj, form, change):
        controls = getattr(form, "controls", {})
        if change:
            services.webhook_update(
                webhook=obj, **{name: form.cleaned_data[name] for name in form.changed_data if name in EDITABLE}, **controls
            )
            return
        created = services.webhook_create(site=obj.site, **{name: form.cleaned_data[name] for name in EDITABLE}, **controls)
        obj.pk, obj.secret, obj.created_at = created.pk, created.secret, created.created_at
        obj._state.adding = False
        if obj.format not in CREDENTIAL_URL_FORMATS:
            secrets_show_once(request, title=f"Signing secret for {obj.displayed_url}", secrets=[("", obj.secret)])

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

    @admin.action(description="Rotate the signing secret (old one valid 24 h)", permissions=["change"])
    def rotate_secret(self, request, queryset):
        for webhook in self._subscriber_webhooks(request, queryset):
            rotated = services.webhook_rotate_secret(webhook=webhook)
            secrets_show_once(request, title=f"New signing secret for {rotated.displayed_url}", secrets=[("", rotated.secret)])

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

    @admin.action(description=_("Test the filter on example data…"), permissions=["view"])
    def filter_test(self, request, queryset):
        form = FilterTestForm(request.POST if "apply" in request.POST else None)
        results = []
        if form.is_valid():
            data = form.cleaned_data["data"]
            results = [(webhook, webhook.filter, filter_matches(webhook.filter, data)) for webhook in queryset]
        return TemplateResponse(
            request,
            "admin/subscriptions/webhook/filter_test.html",
            {
                **self.admin_site.each_context(request),
                "title": gettext("Test the filter"),
                "opts": self.model._meta,
                "form": form,
                "webhooks": queryset,
                "results": results,
                "action": "filter_test",
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )


class FilterTestForm(forms.Form):
    data = forms.JSONField(
        label=_("Example event data"),
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_('The data of an event, as {"channel": "whatsapp", "body": "Hi"}.'),
    )

    def clean_data(self):
        data = self.cleaned_data["data"]
        if not isinstance(data, dict):
            raise ValidationError(gettext("Event data is a JSON object."))
        return data
