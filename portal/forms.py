"""The portal's forms. Each calls the same service as the REST API, so a rule is written once; a
service's ValidationError lands on the field it names. A new webhook field is a form field named
like the service's keyword argument, and a line in the template."""

import json
from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from deliveries.models import Delivery
from portal.templatetags.portal import STATUS_LABELS
from subscriptions import services as subscription_services
from subscriptions.event_types import ALL_EVENTS, CATALOGUE, MESSAGE_RECEIVED, SUBSCRIPTION_NAMES
from subscriptions.models import SUBSCRIBER_FORMATS, Webhook, WebhookFormat, WebhookOrdering

# One line on what each format is for, shown beside its choice.
FORMAT_PURPOSES = {
    WebhookFormat.AGENTBOT: _("Agentbot's own JSON, signed in X-Agentbot-Signature: for your backend, Zapier or n8n."),
    WebhookFormat.CHATZURI: _("The Chatzuri envelope (eventType, agentId, payload), signed in x-chatzuri-signature."),
    WebhookFormat.LEADS: _('Flat lead and appointment records for a CRM; it must answer {"status":"success"}.'),
    WebhookFormat.STANDARD: _("Standard Webhooks: verify it with the standardwebhooks or svix libraries."),
    WebhookFormat.SLACK: _("A message in a Slack channel, through its incoming webhook URL."),
    WebhookFormat.DISCORD: _("A message in a Discord channel, through its webhook URL."),
    WebhookFormat.TEAMS: _("An Adaptive Card in a Microsoft Teams channel, through a Workflows webhook URL."),
}

# The same words as the operator's admin, so one translation serves both.
ORDERING_CHOICES = [
    (WebhookOrdering.NONE.value, _("None: every delivery on its own, concurrently (fastest)")),
    (WebhookOrdering.KEY.value, _("Per ordering key: one at a time per key, in publish order")),
    (WebhookOrdering.WEBHOOK.value, _("Whole webhook: one at a time, in publish order")),
]

EVENT_DESCRIPTIONS = {MESSAGE_RECEIVED: _("A visitor's message.created only (the Chatzuri name for it).")}


def _event_choices():
    return [(ALL_EVENTS, _("All events")), *((name, name) for name in SUBSCRIPTION_NAMES)]


class WebhookForm(forms.Form):
    url = forms.CharField(label=_("URL"), max_length=2048, required=True)
    events = forms.MultipleChoiceField(label=_("Events"), choices=_event_choices, widget=forms.CheckboxSelectMultiple)
    format = forms.ChoiceField(
        label=_("Format"),
        choices=[(f.value, f.value) for f in SUBSCRIBER_FORMATS],
        initial=WebhookFormat.AGENTBOT,
        widget=forms.RadioSelect,
    )
    ordering = forms.ChoiceField(
        label=_("Ordering"),
        choices=ORDERING_CHOICES,
        initial=WebhookOrdering.NONE,
        required=False,
        widget=forms.RadioSelect,
    )
    description = forms.CharField(label=_("Description"), max_length=500, required=False)
    # Delivery controls (docs/delivery-controls.md): each becomes the service's keyword of its name.
    headers = forms.CharField(
        label=_("Extra headers (JSON)"),
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_('Sent with every request, as {"X-Tenant": "acme"}.'),
    )
    filter = forms.CharField(
        label=_("Filter (JSON)"),
        required=False,
        max_length=8192,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_('Only events whose data matches, as {"channel": {"$in": ["whatsapp", "telegram"]}}. Empty: every event.'),
    )
    rate_limit_count = forms.IntegerField(label=_("At most this many requests"), required=False, min_value=1, max_value=10_000)
    rate_limit_period = forms.ChoiceField(
        label=_("per"), choices=[("per_second", _("second")), ("per_minute", _("minute"))], required=False
    )
    auth_type = forms.ChoiceField(
        label=_("Authentication"),
        choices=[("none", _("None")), ("basic", _("HTTP Basic")), ("bearer", _("Bearer token"))],
        required=False,
    )
    auth_username = forms.CharField(label=_("Basic: username"), required=False, max_length=2048)
    auth_secret = forms.CharField(
        label=_("Password or token"),
        required=False,
        max_length=2048,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Stored encrypted and never shown again. Leave empty to keep the stored one."),
    )

    def __init__(self, *args, webhook: Webhook | None = None, **kwargs):
        self.webhook = webhook
        if webhook is not None:
            period, count = next(iter((webhook.rate_limit or {"per_second": None}).items()))
            kwargs.setdefault(
                "initial",
                {
                    # A URL that is a credential is never sent back to the browser: empty keeps it.
                    "url": "" if webhook.url_is_credential else webhook.url,
                    "events": webhook.events,
                    "format": webhook.format,
                    "ordering": webhook.ordering,
                    "description": webhook.description,
                    "headers": json.dumps(webhook.headers) if webhook.headers else "",
                    "filter": json.dumps(webhook.filter) if webhook.filter else "",
                    "rate_limit_count": count,
                    "rate_limit_period": period,
                    "auth_type": (webhook.auth or {}).get("type", "none"),
                    "auth_username": (webhook.auth or {}).get("username", ""),
                },
            )
        super().__init__(*args, **kwargs)
        if webhook is not None and (webhook.auth or {}).get("type") == "oauth2":
            self.fields["auth_type"].choices = [
                *self.fields["auth_type"].choices,
                ("oauth2", _("OAuth2 client credentials (change it through the API)")),
            ]
        if webhook is not None and webhook.url_is_credential:
            self.fields["url"].required = False
            self.fields["url"].help_text = _("Shown as %(hint)s. Leave empty to keep it.") % {"hint": webhook.url_hint()}

    def clean_ordering(self):
        # Left out (a script's POST): a new webhook is unordered, an edited one keeps its ordering.
        return self.cleaned_data.get("ordering") or (self.webhook.ordering if self.webhook else WebhookOrdering.NONE)

    def event_options(self):
        """(checkbox, its catalogue entry as JSON to read or None, description) for the template."""
        for widget in self["events"]:
            value = widget.data["value"]
            entry = CATALOGUE.get(value)
            description = entry.description if entry else EVENT_DESCRIPTIONS.get(value, "")
            docs = entry and {
                "name": entry.name,
                "example_json": json.dumps(entry.example, indent=2, ensure_ascii=False),
                "schema_json": json.dumps(entry.schema, indent=2),
            }
            yield widget, docs, description

    def format_options(self):
        for widget in self["format"]:
            yield widget, FORMAT_PURPOSES.get(widget.data["value"], "")

    def _json(self, name: str):
        text = (self.cleaned_data.get(name) or "").strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValidationError(_("This is not JSON: %(error)s") % {"error": exc}) from exc

    def clean_headers(self):
        return self._json("headers") or {}

    def clean_filter(self):
        return self._json("filter")

    def _controls(self, data: dict, changed: set[str]) -> dict:
        """The delivery controls among `changed` fields, as the services take them; `data` loses
        the form's own names for them."""
        count, period = data.pop("rate_limit_count", None), data.pop("rate_limit_period", None)
        kind = data.pop("auth_type", None)
        if not kind or kind == "oauth2":  # not given, or OAuth2 (set through the API or the admin): kept
            changed = changed - {"auth_type", "auth_username"}
        if not period:
            changed, period = changed - {"rate_limit_period"}, "per_second"
        username, secret = data.pop("auth_username", ""), data.pop("auth_secret", "")
        controls = {name: data.pop(name) for name in ("headers", "filter") if name in data and name in changed}
        if changed & {"rate_limit_count", "rate_limit_period"}:
            controls["rate_limit"] = {period: count} if count else None
        if changed & {"auth_type", "auth_username"} or (secret and kind in ("basic", "bearer")):
            auth = {"type": kind}
            if kind == "basic":
                auth["username"] = username
            if secret and kind in ("basic", "bearer"):
                auth["password" if kind == "basic" else "token"] = secret
            controls["auth"] = auth
        data.pop("headers", None), data.pop("filter", None)
        return controls

    def save(self, *, site=None) -> Webhook | None:
        """Create (with `site`) or change the form's webhook through the services; None when the
        service refused, with its message on the form."""
        data = dict(self.cleaned_data)
        try:
            if self.webhook is None:
                controls = self._controls(data, set(self.changed_data))
                return subscription_services.webhook_create(site=site, **data, **controls)
            controls = self._controls(data, set(self.changed_data))
            changes = {name: data[name] for name in self.changed_data if name in data}
            changes.update(controls)
            if changes.get("url", None) == "" and self.webhook.url_is_credential:
                del changes["url"]
            if not changes:
                return self.webhook
            return subscription_services.webhook_update(webhook=self.webhook, **changes)
        except ValidationError as exc:
            targets = {"auth": "auth_type", "rate_limit": "rate_limit_count"}
            for field, messages in exc.message_dict.items():
                field = targets.get(field, field)
                self.add_error(field if field in self.fields else None, messages)
            return None


SINCE_CHOICES = [
    ("1h", _("Last hour"), timedelta(hours=1)),
    ("24h", _("Last 24 hours"), timedelta(hours=24)),
    ("7d", _("Last 7 days"), timedelta(days=7)),
    ("", _("Any time"), None),
]


class DeliveryFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[("", _("Any status")), *((s.value, STATUS_LABELS[s.value]) for s in Delivery.Status)],
    )
    event_type = forms.ChoiceField(
        label=_("Event type"), required=False, choices=lambda: [("", _("Any event")), *((n, n) for n in CATALOGUE)]
    )
    since = forms.ChoiceField(label=_("Time"), required=False, choices=[(key, label) for key, label, _d in SINCE_CHOICES])

    def filter(self, deliveries):
        if not self.is_valid():
            return deliveries
        data = self.cleaned_data
        if data.get("status"):
            deliveries = deliveries.filter(status=data["status"])
        if data.get("event_type"):
            deliveries = deliveries.filter(event__type=data["event_type"])
        span = next((d for key, _label, d in SINCE_CHOICES if key == data.get("since")), None)
        if span is not None:
            deliveries = deliveries.filter(created_at__gte=timezone.now() - span)
        return deliveries


class RedeliverForm(forms.Form):
    since = forms.DateTimeField(
        label=_("Failed since"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )

    def clean_since(self):
        since = self.cleaned_data["since"]
        if since > timezone.now():
            raise ValidationError(_("Choose a moment in the past."))
        return since
