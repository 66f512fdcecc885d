"""REST API of the inbound side: integrations, their register-webhook helper, the knowledge base
the agent answers from, and the log of what the integrations delivered."""

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.auth import site_of
from core.api.fields import StrictBooleanField, StrictCharField
from core.api.serializers import PatchSerializer, StrictSerializer, no_input, valid_input
from inbound import integrations
from inbound.connectors.chat2desk.api_fields import Chat2DeskInput, Chat2DeskOutput
from inbound.connectors.chat2desk.client import Chat2DeskError
from inbound.connectors.chat2desk.services import NotSupported, integration_register_webhook
from inbound.connectors.webchat.api_fields import WebchatInput, WebchatOutput
from inbound.connectors.webchat.services import embed_snippet
from inbound.connectors.webhook_channel.api_fields import OUTPUT_FIELDS as WEBHOOK_CHANNEL_FIELDS
from inbound.connectors.webhook_channel.api_fields import WebhookChannelInput, WebhookChannelOutput
from inbound.models import ConnectorType, InboundEvent, Integration, KnowledgeEntry


# --- integrations ------------------------------------------------------------------------------
# Each connector declares its settings (its api_fields.py), mixed in here. No docstrings on the
# mixins: the schema takes a serializer's docstring as its description.
class IntegrationSerializer(Chat2DeskOutput, WebhookChannelOutput, WebchatOutput, serializers.ModelSerializer):
    webhook_url = serializers.SerializerMethodField(help_text="Where the platform posts: set it there, or register it.")
    embed_snippet = serializers.SerializerMethodField(help_text="Webchat: the <script> tag that embeds the widget.")
    reply_webhook_id = serializers.CharField(read_only=True, allow_null=True)

    class Meta:
        model = Integration
        fields = [
            "id",
            "connector_type",
            "name",
            "active",
            "api_url",
            "api_token_set",
            "webhook_url",
            "webhook_registered",
            "webhook_registered_at",
            "reply_webhook_id",
            *WEBHOOK_CHANNEL_FIELDS,
            "allowed_origins",
            "embed_snippet",
            "created_at",
            "updated_at",
        ]

    def get_embed_snippet(self, integration: Integration) -> str | None:
        if integration.connector_type != ConnectorType.WEBCHAT:
            return None
        return embed_snippet(integration=integration, base_url=public_url(self.context.get("request"), "/").rstrip("/"))

    def get_webhook_url(self, integration: Integration) -> str | None:
        path = integration.webhook_path
        return path and public_url(self.context.get("request"), path)


class IntegrationWithSecretSerializer(IntegrationSerializer):
    webhook_secret = serializers.SerializerMethodField(
        help_text="Chat2Desk: shown only in this response; configure it on the platform, which signs with it."
    )
    client_secret = serializers.SerializerMethodField(
        help_text="Webhook channel: the HS256/HS512 key your JWTs are signed with; shown only in this response."
    )
    post_url_secret = serializers.SerializerMethodField(
        help_text="Webhook channel: the key of the X-Agentbot-Signature on what is posted to the POST_URL; shown only in this response."
    )

    class Meta(IntegrationSerializer.Meta):
        fields = IntegrationSerializer.Meta.fields + ["webhook_secret", "client_secret", "post_url_secret"]

    def get_webhook_secret(self, integration: Integration) -> str | None:
        # Only Chat2Desk signs what it posts with it; the other connectors authenticate otherwise.
        return integration.webhook_secret if integration.connector_type == ConnectorType.CHAT2DESK else None

    def get_client_secret(self, integration: Integration) -> str | None:
        return integration.client_secret if integration.connector_type == ConnectorType.WEBHOOK else None

    def get_post_url_secret(self, integration: Integration) -> str | None:
        webhook = integration.reply_webhook
        return webhook.secret if integration.connector_type == ConnectorType.WEBHOOK and webhook else None


class IntegrationCommonInput(StrictSerializer):
    # What every integration takes; first, so the fields keep their order.

    connector_type = serializers.ChoiceField(choices=ConnectorType.choices, default=ConnectorType.CHAT2DESK)
    name = StrictCharField(max_length=200, allow_blank=True, default="")
    active = StrictBooleanField(default=True)


class IntegrationInputSerializer(IntegrationCommonInput, Chat2DeskInput, WebhookChannelInput, WebchatInput):
    read_only_names = IntegrationWithSecretSerializer.Meta.fields


class IntegrationPatchSerializer(PatchSerializer, IntegrationInputSerializer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["connector_type"]


class RegisteredSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    webhookRegisteredAt = serializers.DateTimeField()


def public_url(request, path: str) -> str:
    if settings.AGENTBOT_PUBLIC_URL:
        return settings.AGENTBOT_PUBLIC_URL + path
    return request.build_absolute_uri(path) if request is not None else path


def integration_of(request, integration_id: str) -> Integration:
    return get_object_or_404(
        Integration.objects.select_related("site", "reply_webhook"), pk=integration_id, site=site_of(request)
    )


class IntegrationListView(GenericAPIView):
    serializer_class = IntegrationSerializer

    @extend_schema(responses=IntegrationSerializer(many=True), summary="List integrations")
    def get(self, request):
        page = self.paginate_queryset(Integration.objects.filter(site=site_of(request)).order_by("-created_at"))
        return self.get_paginated_response(IntegrationSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(
        request=IntegrationInputSerializer,
        responses={201: IntegrationWithSecretSerializer},
        summary="Create an integration (its webhook secret is in this response only)",
    )
    def post(self, request):
        integration = integrations.integration_create(site=site_of(request), **valid_input(IntegrationInputSerializer, request))
        return Response(
            IntegrationWithSecretSerializer(integration, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class IntegrationDetailView(APIView):
    @extend_schema(responses=IntegrationSerializer, summary="Get an integration")
    def get(self, request, integration_id):
        return Response(IntegrationSerializer(integration_of(request, integration_id), context={"request": request}).data)

    @extend_schema(request=IntegrationPatchSerializer, responses=IntegrationSerializer, summary="Change an integration")
    def patch(self, request, integration_id):
        integration = integrations.integration_update(
            integration=integration_of(request, integration_id), **valid_input(IntegrationPatchSerializer, request)
        )
        return Response(IntegrationSerializer(integration, context={"request": request}).data)

    @extend_schema(request=None, responses={204: None}, summary="Delete an integration")
    def delete(self, request, integration_id):
        integrations.integration_delete(integration=integration_of(request, integration_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class IntegrationRotateSecretView(APIView):
    @extend_schema(
        request=None,
        responses=IntegrationWithSecretSerializer,
        summary="Make a new webhook secret (the old one stops verifying at once)",
    )
    def post(self, request, integration_id):
        integration = integration_of(request, integration_id)
        no_input(request)
        integration = integrations.integration_rotate_secret(integration=integration)
        return Response(IntegrationWithSecretSerializer(integration, context={"request": request}).data)


ERROR = {"$ref": "#/components/schemas/Error"}


def error_response(description: str, error: str, message: str) -> OpenApiResponse:
    """An error only this view answers, in the API's error shape, with its own example."""
    return OpenApiResponse(
        ERROR, description=description, examples=[OpenApiExample(error, value={"error": error, "message": message})]
    )


class IntegrationRegisterWebhookView(APIView):
    @extend_schema(
        request=None,
        responses={
            200: RegisteredSerializer,
            400: error_response(
                "`not_supported`: the integration has no API URL (or token), or is not Chat2Desk.",
                "not_supported",
                "set the integration's API URL (Chat2Desk's global or Europe instance) first",
            ),
            502: error_response(
                "`chat2desk_error`: Chat2Desk refused the registration or could not be reached.",
                "chat2desk_error",
                'Chat2Desk answered 401 to POST https://api.chat2desk.com/v1/webhooks: {"status": "error"}',
            ),
        },
        summary="Register (or re-register) the webhook URL with Chat2Desk",
        description="Idempotent: creates Chat2Desk's registration when there is none, else updates it.",
    )
    def post(self, request, integration_id):
        integration = integration_of(request, integration_id)
        no_input(request)
        try:
            integration = integration_register_webhook(integration=integration, url=public_url(request, integration.webhook_path))
        except NotSupported as exc:
            return Response({"error": "not_supported", "message": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except Chat2DeskError as exc:
            return Response({"error": "chat2desk_error", "message": str(exc)}, status=status.HTTP_502_BAD_GATEWAY)
        registered_at = integration.webhook_registered_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return Response({"ok": True, "webhookRegisteredAt": registered_at})


# --- the knowledge base ------------------------------------------------------------------------
class KnowledgeEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = KnowledgeEntry
        fields = ["id", "question", "answer", "keywords", "enabled", "created_at", "updated_at"]


class KnowledgeEntryInputSerializer(StrictSerializer):
    question = StrictCharField(max_length=500)
    answer = StrictCharField(max_length=20000)
    keywords = StrictCharField(max_length=500, allow_blank=True, default="")
    enabled = StrictBooleanField(default=True)
    read_only_names = KnowledgeEntrySerializer.Meta.fields


class KnowledgeEntryPatchSerializer(PatchSerializer, KnowledgeEntryInputSerializer):
    pass


def entry_of(request, entry_id: str) -> KnowledgeEntry:
    return get_object_or_404(KnowledgeEntry, pk=entry_id, site=site_of(request))


class KnowledgeListView(GenericAPIView):
    serializer_class = KnowledgeEntrySerializer

    @extend_schema(responses=KnowledgeEntrySerializer(many=True), summary="List the knowledge base")
    def get(self, request):
        page = self.paginate_queryset(KnowledgeEntry.objects.filter(site=site_of(request)).order_by("question", "id"))
        return self.get_paginated_response(KnowledgeEntrySerializer(page, many=True).data)

    @extend_schema(
        request=KnowledgeEntryInputSerializer, responses={201: KnowledgeEntrySerializer}, summary="Add a question and its answer"
    )
    def post(self, request):
        entry = KnowledgeEntry.objects.create(site=site_of(request), **valid_input(KnowledgeEntryInputSerializer, request))
        return Response(KnowledgeEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


class KnowledgeDetailView(APIView):
    @extend_schema(responses=KnowledgeEntrySerializer, summary="Get a knowledge base entry")
    def get(self, request, entry_id):
        return Response(KnowledgeEntrySerializer(entry_of(request, entry_id)).data)

    @extend_schema(
        request=KnowledgeEntryPatchSerializer, responses=KnowledgeEntrySerializer, summary="Change a knowledge base entry"
    )
    def patch(self, request, entry_id):
        entry = entry_of(request, entry_id)
        for name, value in valid_input(KnowledgeEntryPatchSerializer, request).items():
            setattr(entry, name, value)
        entry.save()
        return Response(KnowledgeEntrySerializer(entry).data)

    @extend_schema(request=None, responses={204: None}, summary="Delete a knowledge base entry")
    def delete(self, request, entry_id):
        entry_of(request, entry_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- what integrations delivered ---------------------------------------------------------------
class InboundEventSerializer(serializers.ModelSerializer):
    integration_id = serializers.CharField()
    conversation_id = serializers.CharField(allow_null=True)

    class Meta:
        model = InboundEvent
        fields = [
            "id",
            "integration_id",
            "kind",
            "status",
            "payload",
            "external_id",
            "conversation_id",
            "outcome",
            "attempts",
            "received_at",
            "processed_at",
        ]


class IntegrationInboundEventListView(GenericAPIView):
    serializer_class = InboundEventSerializer

    @extend_schema(responses=InboundEventSerializer(many=True), summary="What the integration's platform sent, newest first")
    def get(self, request, integration_id):
        integration = integration_of(request, integration_id)
        page = self.paginate_queryset(InboundEvent.objects.filter(integration=integration).order_by("-received_at", "-id"))
        return self.get_paginated_response(InboundEventSerializer(page, many=True).data)


# --- examples for the OpenAPI document, by the name of their component (see agentbot.schema) ---
AT = "2026-05-21T17:45:12Z"
INTEGRATION_ID = "intg_01jw3k2m4n6p8q0r2s4t6v8x0z"
INTEGRATION_INPUT = {
    "connector_type": "chat2desk",
    "name": "WhatsApp support",
    "active": True,
    "api_url": "https://api.chat2desk.com",
    "api_token": "c2d_4f9a1b7e2c",
}
INTEGRATION = {
    "id": INTEGRATION_ID,
    "connector_type": "chat2desk",
    "name": "WhatsApp support",
    "active": True,
    "api_url": "https://api.chat2desk.com",
    "api_token_set": True,
    "webhook_url": f"https://agent.example.com/api/webhook/chat2desk/{INTEGRATION_ID}",
    "webhook_registered": True,
    "webhook_registered_at": AT,
    "reply_webhook_id": "wh_01jw3k2m4n6p8q0r2s4t6v8x1a",
    "api_version": "v2",
    "mode": "sync",
    "post_url": "",
    "polling": True,
    "jwt_algorithm": "HS256",
    "client_id": "",
    "public_key": "",
    "allow_anonymous": False,
    "auto_register": True,
    "jwe_public_key": "",
    "allowed_origins": [],
    "embed_snippet": None,
    "created_at": AT,
    "updated_at": AT,
}
KNOWLEDGE_INPUT = {
    "question": "Qual o horário de funcionamento?",
    "answer": "Das 9h às 18h, de segunda a sexta.",
    "keywords": "horário, aberto, funcionamento",
    "enabled": True,
}
SCHEMA_EXAMPLES = {
    "IntegrationInputRequest": INTEGRATION_INPUT,
    "PatchedIntegrationPatchRequest": {"api_url": "https://api.chat2desk.eu"},
    "Integration": INTEGRATION,
    "IntegrationWithSecret": {
        **INTEGRATION,
        "webhook_secret": "3q2-7wEAAAAgSWZ0ZXJfc2lnbmF0dXJlX3NlY3JldA0",
        "client_secret": None,
        "post_url_secret": None,
    },
    "Registered": {"ok": True, "webhookRegisteredAt": AT},
    "KnowledgeEntryInputRequest": KNOWLEDGE_INPUT,
    "PatchedKnowledgeEntryPatchRequest": {"enabled": False},
    "KnowledgeEntry": {"id": "kb_01jw3k2m4n6p8q0r2s4t6v8x2b", **KNOWLEDGE_INPUT, "created_at": AT, "updated_at": AT},
    "InboundEvent": {
        "id": "inb_01jw3k2m4n6p8q0r2s4t6v8x3c",
        "integration_id": INTEGRATION_ID,
        "kind": "message",
        "status": "processed",
        "payload": {
            "text": "Qual o horário de funcionamento?",
            "client_id": "12345678",
            "channel_id": "987654",
            "transport": "whatsapp",
        },
        "external_id": "",
        "conversation_id": "conv_01jw3k2m4n6p8q0r2s4t6v8x4d",
        "outcome": "answered with msg_01jw3k2m4n6p8q0r2s4t6v8x5e, sent as evt_01jw3k2m4n6p8q0r2s4t6v8x6f",
        "attempts": 1,
        "received_at": AT,
        "processed_at": AT,
    },
}
