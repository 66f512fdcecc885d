from django.contrib import admin
from django.urls import include, path, re_path, register_converter
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from agentbot import health, metrics
from core import ids
from deliveries import api as deliveries_api
from domain import api as domain_api
from inbound import api as inbound_api
from inbound import views as inbound_views
from inbound.connectors.webchat import views as webchat_views
from inbound.connectors.webhook_channel import upload_views
from inbound.connectors.webhook_channel import views as webhook_channel_views
from portal import api as portal_api
from subscriptions import api as subscriptions_api

# Every id in a path is matched by its grammar (core/ids.py): junk there is a 404, never a query.
for _name, _converter in ids.path_converters().items():
    register_converter(_converter, _name)


def route(pattern: str, view, name: str):
    return path(pattern, view.as_view(), name=name)


api_v1 = [
    route("webhooks", subscriptions_api.WebhookListView, "webhook-list"),
    route("webhooks/<wh:webhook_id>", subscriptions_api.WebhookDetailView, "webhook-detail"),
    route("webhooks/<wh:webhook_id>/rotate-secret", subscriptions_api.WebhookRotateSecretView, "webhook-rotate"),
    route("webhooks/<wh:webhook_id>/filter-test", subscriptions_api.WebhookFilterTestView, "webhook-filter-test"),
    route("webhooks/<wh:webhook_id>/test", deliveries_api.WebhookTestView, "webhook-test"),
    route("webhooks/<wh:webhook_id>/deliveries", deliveries_api.WebhookDeliveryListView, "webhook-deliveries"),
    route("deliveries", deliveries_api.DeliveryListView, "delivery-list"),
    route("deliveries/<dlv:delivery_id>", deliveries_api.DeliveryDetailView, "delivery-detail"),
    route("deliveries/<dlv:delivery_id>/retry", deliveries_api.DeliveryRetryView, "delivery-retry"),
    route("deliveries/<dlv:delivery_id>/skip", deliveries_api.DeliverySkipView, "delivery-skip"),
    path("events", deliveries_api.event_publish_endpoint, name="event-publish"),
    route("events/batch", deliveries_api.EventBatchPublishView, "event-publish-batch"),
    route("events/<evt:event_id>", deliveries_api.EventDetailView, "event-detail"),
    route("events/<evt:event_id>/deliveries", deliveries_api.EventDeliveryListView, "event-deliveries"),
    route("event-types", deliveries_api.EventTypeListView, "event-types"),
    path("schema", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "docs",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="docs",
    ),
    route("conversations", domain_api.ConversationListView, "conversation-list"),
    route("conversations/<conv:conversation_id>/messages", domain_api.ConversationMessageListView, "conversation-messages"),
    route("conversations/<conv:conversation_id>/handoff", domain_api.ConversationHandoffView, "conversation-handoff"),
    route("conversations/<conv:conversation_id>/close", domain_api.ConversationCloseView, "conversation-close"),
    route("tickets", domain_api.TicketListView, "ticket-list"),
    route("tickets/<tkt:ticket_id>", domain_api.TicketDetailView, "ticket-detail"),
    route("conversations/<conv:conversation_id>/resume", domain_api.ConversationResumeView, "conversation-resume"),
    route("leads", domain_api.LeadListView, "lead-list"),
    route("appointments", domain_api.AppointmentListView, "appointment-list"),
    route("integrations", inbound_api.IntegrationListView, "integration-list"),
    route("integrations/<intg:integration_id>", inbound_api.IntegrationDetailView, "integration-detail"),
    route("integrations/<intg:integration_id>/rotate-secret", inbound_api.IntegrationRotateSecretView, "integration-rotate"),
    route(
        "integrations/<intg:integration_id>/register-webhook",
        inbound_api.IntegrationRegisterWebhookView,
        "integration-register-webhook",
    ),
    route(
        "integrations/<intg:integration_id>/inbound-events", inbound_api.IntegrationInboundEventListView, "integration-inbound"
    ),
    route("portal-links", portal_api.PortalLinkCreateView, "portal-link-create"),
    route("portal-settings", portal_api.PortalSettingsView, "portal-settings"),
    route("knowledge", inbound_api.KnowledgeListView, "knowledge-list"),
    route("knowledge/<kb:entry_id>", inbound_api.KnowledgeDetailView, "knowledge-detail"),
]

# The admin pages of the models that left the agentbot app (bookmarks, links in old notes) lead to
# their new place: /admin/agentbot/conversation/… → /admin/domain/conversation/….
MOVED_ADMIN = {
    "core": "site|apikey",
    "domain": "conversation|message|ticket|lead|appointment",
    "inbound": "integration|inboundevent|knowledgeentry",
}
moved_admin = [
    re_path(rf"^admin/agentbot/(?P<rest>(?:{models})/.*)$", RedirectView.as_view(url=f"/admin/{app}/%(rest)s", query_string=True))
    for app, models in MOVED_ADMIN.items()
]

urlpatterns = [
    *moved_admin,
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("portal/", include("portal.urls")),
    # The inbound webhooks document's URLs: the platforms' webhook, and the register-webhook helper at its documented path.
    path("api/webhook/<slug:connector_type>/<intg:integration_id>", inbound_views.connector_webhook, name="connector-webhook"),
    # The webhook channel's URLs, as its document names them: the first instance, the further ones, and v2 polling.
    path("chatbot/hooks/<site:bot_id>", webhook_channel_views.hook, name="webhook-channel"),
    path(
        "chatbot/hooks/<site:bot_id>/hookInstance/<intg:instance_id>",
        webhook_channel_views.hook,
        name="webhook-channel-instance",
    ),
    path("chatbot/hooks/<site:bot_id>/poll/<inb:poll_id>", webhook_channel_views.poll, name="webhook-channel-poll"),
    # The webhook channel's uploads (v2), at either of an instance's URLs, and the signed file link.
    *[
        path(f"{hook}/uploads{tail}", view, name=f"webhook-channel-upload{suffix}{name}")
        for hook, suffix in (
            ("chatbot/hooks/<site:bot_id>", ""),
            ("chatbot/hooks/<site:bot_id>/hookInstance/<intg:instance_id>", "-instance"),
        )
        for tail, view, name in (
            ("", upload_views.upload, ""),
            ("/init", upload_views.upload_init, "-init"),
            ("/<file:file_id>/parts/<int:number>", upload_views.upload_part, "-part"),
            ("/<file:file_id>/finish", upload_views.upload_finish, "-finish"),
        )
    ],
    path("chatbot/files/<str:token>", upload_views.file_download, name="webhook-channel-file"),
    route(
        "api/integrations/<intg:integration_id>/register-webhook",
        inbound_api.IntegrationRegisterWebhookView,
        "integration-register-webhook-seed",
    ),
    path("webchat/demo", webchat_views.webchat_demo, name="webchat-demo"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
]

handler404 = "core.api.errors.json_not_found"
handler500 = "core.api.errors.json_server_error"
