"""Inbound integrations in the admin: the integration's webhook (its URL, its secret shown once, its
registration with Chat2Desk), the knowledge base the agent answers from, and the log of what the
platforms delivered.

Integrations change only through inbound.services, which keep each integration's reply
webhook in step. The API token and the webhook secret are never rendered on a page, except the
secret once, right after it was made.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator, capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.admin import ObjectActionsMixin, secrets_show_once
from inbound import integrations
from inbound.api import public_url
from inbound.connectors.chat2desk.admin_form import Chat2DeskFields
from inbound.connectors.chat2desk.client import Chat2DeskError
from inbound.connectors.chat2desk.services import NotSupported, integration_register_webhook
from inbound.connectors.webchat.admin_form import WebchatFields
from inbound.connectors.webchat.services import embed_snippet
from inbound.connectors.webhook_channel.admin_form import WebhookChannelFields
from inbound.models import (
    SETTING_DEFAULTS,
    ConnectorType,
    InboundEvent,
    Integration,
    KnowledgeEntry,
)

RECENT_EVENTS = 20
# An inbound event's status → the console's badge colour.
STATUS_LEVELS = {"processed": "ok", "failed": "error", "received": "warning", "accepted": "warning", "unmatched": "warning"}


def webhook_badge(integration: Integration) -> str:
    """ "Webhook OK" once the webhook is registered with Chat2Desk, else "Webhook pending"."""
    if integration.connector_type != ConnectorType.CHAT2DESK:
        return "—"
    if integration.webhook_registered_at:
        return format_html('<span class="console-status ok">{}</span>', gettext("Webhook OK"))
    return format_html('<span class="console-status warning">{}</span>', gettext("Webhook pending"))


def status_badge(status: str) -> str:
    return format_html('<span class="console-status {}">{}</span>', STATUS_LEVELS.get(status, ""), status)


def _credentials_show_once(request, integration: Integration, what: str) -> None:
    """The secrets an integration's callers need, the one time they can be read: a Chat2Desk
    integration's webhook secret (Chat2Desk signs what it posts with it); a webhook channel's client
    id and secret (its callers sign their JWTs with it, HS256/HS512) and the key of the signature on
    what is posted to its POST_URL. A webchat has none."""
    url = public_url(request, integration.webhook_path)
    title = gettext("%(what)s of %(integration)s") % {"what": what, "integration": integration}
    if integration.connector_type == ConnectorType.CHAT2DESK:
        secrets = [("", integration.webhook_secret)]
        then = format_html(gettext("Chat2Desk signs what it posts to <code>{url}</code> with it."), url=url)
    elif integration.connector_type == ConnectorType.WEBHOOK:
        signing = integration.reply_webhook.secret if integration.reply_webhook else ""
        secrets = [
            (gettext("client id"), integration.client_id),
            (gettext("client secret"), integration.client_secret),
            (gettext("POST_URL signing secret"), signing),
        ]
        then = format_html(gettext("Callers post to <code>{url}</code> with a JWT whose appId is the client id."), url=url)
    else:
        return
    secrets_show_once(request, title=title, secrets=secrets, then=then)


class IntegrationForm(Chat2DeskFields, WebhookChannelFields, WebchatFields, forms.ModelForm):
    """The fields every integration has; each connector's own come from its admin_form.py."""

    class Meta:
        model = Integration
        fields = ["name", "site", "connector_type", "active"]
        labels = {
            "name": capfirst(_("name")),
            "site": capfirst(_("site")),
            "connector_type": capfirst(_("connector type")),
            "active": capfirst(_("active")),
        }
        help_texts = {"active": _("An inactive integration answers its webhook with 403.")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The connector's settings are not model fields: their initial values are the integration's
        # (a new one's are the defaults). Left out (another connector's form), they keep those.
        for name in SETTING_DEFAULTS:
            if name in self.fields:
                self.initial.setdefault(name, getattr(self.instance, name))


# The rotate action each connector offers on its page (a webchat has nothing to rotate).
ROTATE_ACTIONS = {ConnectorType.CHAT2DESK: ["rotate_secret"], ConnectorType.WEBHOOK: ["rotate_credentials"]}


@admin.register(Integration)
class IntegrationAdmin(ObjectActionsMixin, admin.ModelAdmin):
    form = IntegrationForm
    change_form_template = "admin/inbound/integration/change_form.html"
    list_filter = ["connector_type", "active", "site"]
    list_select_related = ["site"]
    search_fields = ["=id", "name", "=site__id", "site__name"]
    readonly_fields = ["recent_events"]
    actions = ["rotate_secret", "rotate_credentials"]

    def get_list_display(self, request):
        @admin.display(description=_("webhook URL"))
        def webhook_url(obj):
            path = obj.webhook_path
            return path and public_url(request, path)

        return ["title", "connector", "site_key", "is_active", "webhook", webhook_url]

    def get_readonly_fields(self, request, obj=None):
        # The site and the connector make the webhook's URL and the reply destination: fixed once made.
        return self.readonly_fields + (["site", "connector_type", "client_id", "jwe_public_key"] if obj is not None else [])

    def get_fieldsets(self, request, obj=None):
        fieldsets = [(None, {"fields": ["name", "site", "connector_type", "active"]})]
        # A new integration's form shows every connector's fields; an integration's, its connector's.
        connectors = {
            ConnectorType.CHAT2DESK: Chat2DeskFields.FIELDSET,
            ConnectorType.WEBHOOK: WebhookChannelFields.fieldset(obj),
            ConnectorType.WEBCHAT: WebchatFields.FIELDSET,
        }
        for connector, (title, fields) in connectors.items():
            if obj is None or obj.connector_type == connector:
                fieldsets.append((title, {"fields": fields}))
        if obj is not None:
            title = _("Recent inbound events (newest %(count)s)") % {"count": RECENT_EVENTS}
            fieldsets.append((title, {"fields": ["recent_events"]}))
        return fieldsets

    def object_actions(self, request, obj):
        # Chat2Desk signs with a webhook secret, a webhook channel instance holds credentials, and
        # a webchat has neither: its widget's sessions are signed with the service's own key.
        return ROTATE_ACTIONS.get(obj.connector_type, [])

    # --- columns ---------------------------------------------------------------------------
    @admin.display(description=_("name"), ordering="name")
    def title(self, obj):
        return obj.name or obj.id

    @admin.display(description=_("connector type"), ordering="connector_type")
    def connector(self, obj):
        return obj.get_connector_type_display()

    @admin.display(description=_("site"), ordering="site")
    def site_key(self, obj):
        return obj.site_id

    @admin.display(description=_("active"), boolean=True, ordering="active")
    def is_active(self, obj):
        return obj.active

    @admin.display(description=_("webhook"), ordering="webhook_registered_at")
    def webhook(self, obj):
        return webhook_badge(obj)

    # --- the integration's page ------------------------------------------------------------
    @admin.display(description=_("newest first"))
    def recent_events(self, obj):
        events = obj.inbound_events.order_by("-received_at")[:RECENT_EVENTS]
        return render_to_string(
            "admin/inbound/integration/recent_events.html",
            {
                "rows": [(event, status_badge(event.status)) for event in events],
                "all_url": reverse("admin:inbound_inboundevent_changelist") + f"?integration__id__exact={obj.pk}",
            },
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            registrable = obj.connector_type == ConnectorType.CHAT2DESK and self.has_change_permission(request, obj)
            context["webhook"] = {
                "url": public_url(request, obj.webhook_path),
                "chat2desk": obj.connector_type == ConnectorType.CHAT2DESK,
                "badge": webhook_badge(obj),
                "registered_at": obj.webhook_registered_at,
                "register_url": reverse("admin:inbound_integration_register", args=[quote(obj.pk)]) if registrable else "",
                "register_label": gettext("Re-register webhook") if obj.webhook_registered_at else gettext("Register webhook"),
            }
            if obj.connector_type == ConnectorType.WEBCHAT:  # no webhook: the widget connects over Socket.IO
                del context["webhook"]
                base_url = public_url(request, "/").rstrip("/")
                demo_url = public_url(request, reverse("webchat-demo")) + f"?integration={obj.pk}"
                context["webchat"] = {"snippet": embed_snippet(integration=obj, base_url=base_url), "demo_url": demo_url}
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def get_urls(self):
        view = self.admin_site.admin_view(self.register_webhook_view)
        return [path("<path:object_id>/register-webhook/", view, name="inbound_integration_register")] + super().get_urls()

    def register_webhook_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        integration = self.get_object(request, unquote(object_id))
        if integration is None:
            raise Http404("no such integration")
        if not self.has_change_permission(request, integration):
            raise PermissionDenied
        try:
            integration = integration_register_webhook(integration=integration, url=public_url(request, integration.webhook_path))
        except NotSupported as exc:
            self.message_user(request, gettext("The webhook was not registered: %(reason)s.") % {"reason": exc}, messages.ERROR)
        except Chat2DeskError as exc:
            self.message_user(
                request, gettext("Chat2Desk did not register the webhook: %(error)s") % {"error": exc}, messages.ERROR
            )
        else:
            self.message_user(
                request,
                gettext("Webhook registered with Chat2Desk at %(time)s UTC: Chat2Desk now posts to %(url)s.")
                % {
                    "time": f"{integration.webhook_registered_at:%Y-%m-%d %H:%M:%S}",
                    "url": public_url(request, integration.webhook_path),
                },
                messages.SUCCESS,
            )
        return HttpResponseRedirect(reverse("admin:inbound_integration_change", args=[quote(integration.pk)]))

    # --- writes go through the services ----------------------------------------------------
    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            changes = {name: data[name] for name in form.changed_data if name in ("name", "active", "api_url", "allowed_origins")}
            if data.get("new_api_token"):  # blank keeps the current token
                changes["api_token"] = data["new_api_token"]
            if obj.connector_type == ConnectorType.WEBHOOK:
                changes.update(form.channel_changes())
            if changes:
                integrations.integration_update(integration=obj, **changes)
            return
        created = integrations.integration_create(
            site=data["site"],
            connector_type=data["connector_type"],
            name=data["name"],
            active=data["active"],
            api_url=data["api_url"],
            api_token=data["new_api_token"],
            allowed_origins=data["allowed_origins"],
            **(form.channel_changes() if data["connector_type"] == ConnectorType.WEBHOOK else {}),
        )
        obj.pk, obj.created_at = created.pk, created.created_at
        obj._state.adding = False
        what = gettext("Credentials") if created.connector_type == ConnectorType.WEBHOOK else gettext("Webhook secret")
        _credentials_show_once(request, created, what)

    def delete_model(self, request, obj):
        integrations.integration_delete(integration=obj)

    def delete_queryset(self, request, queryset):
        for integration in queryset:
            integrations.integration_delete(integration=integration)

    # --- actions -----------------------------------------------------------------------------
    @admin.action(description=_("Rotate webhook secret"), permissions=["change"])
    def rotate_secret(self, request, queryset):
        for integration in self._rotatable(request, queryset, ConnectorType.CHAT2DESK):
            rotated = integrations.integration_rotate_secret(integration=integration)
            _credentials_show_once(request, rotated, gettext("New webhook secret"))

    @admin.action(description=_("Rotate credentials"), permissions=["change"])
    def rotate_credentials(self, request, queryset):
        for integration in self._rotatable(request, queryset, ConnectorType.WEBHOOK):
            rotated = integrations.integration_rotate_secret(integration=integration)
            _credentials_show_once(request, rotated, gettext("New credentials"))

    def _rotatable(self, request, queryset, connector_type: str) -> list[Integration]:
        chosen = list(queryset)
        rotatable = [i for i in chosen if i.connector_type == connector_type]
        if len(rotatable) < len(chosen):
            self.message_user(
                request,
                gettext("Left alone: %(names)s. Only %(kind)s integrations have this to rotate.")
                % {"names": ", ".join(str(i) for i in chosen if i not in rotatable), "kind": ConnectorType(connector_type).label},
                messages.WARNING,
            )
        return rotatable


@admin.register(KnowledgeEntry)
class KnowledgeEntryAdmin(admin.ModelAdmin):
    list_display = ["question", "site", "enabled", "updated_at"]
    list_filter = ["site", "enabled"]
    list_select_related = ["site"]
    search_fields = ["question", "answer", "keywords"]
    fields = ["site", "question", "answer", "keywords", "enabled"]


@admin.register(InboundEvent)
class InboundEventAdmin(admin.ModelAdmin):
    """The log of what the platforms sent: read, and deleted, never written."""

    change_form_template = "admin/console/change_form.html"
    change_list_template = "admin/console/change_list.html"
    list_display = ["received_at", "integration", "kind", "status_column", "outcome_short", "attempts"]
    list_filter = ["status", "kind", "integration"]
    list_select_related = ["integration"]
    search_fields = ["=id", "=external_id", "outcome"]
    fields = [
        "id",
        "integration",
        "kind",
        "status",
        "external_id",
        "conversation",
        "attempts",
        "received_at",
        "processed_at",
        "outcome",
        "payload_pretty",
    ]
    readonly_fields = ["payload_pretty"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("status"), ordering="status")
    def status_column(self, obj):
        return status_badge(obj.status)

    @admin.display(description=_("outcome"))
    def outcome_short(self, obj):
        return Truncator(obj.outcome).chars(120) or "—"

    @admin.display(description=_("payload"))
    def payload_pretty(self, obj):
        return format_html('<pre class="console-pre">{}</pre>', json.dumps(obj.payload, indent=2, ensure_ascii=False))
