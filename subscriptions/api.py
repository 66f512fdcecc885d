"""REST API for webhooks: input serializer → service → output serializer."""

from datetime import timedelta

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.auth import site_of
from core.api.fields import StrictBooleanField, StrictCharField
from core.api.serializers import PatchSerializer, StrictSerializer, valid_input
from subscriptions import selectors, services
from subscriptions.controls import auth_shown
from subscriptions.event_types import ALL_EVENTS, SUBSCRIPTION_NAMES
from subscriptions.filters import filter_matches
from subscriptions.models import SUBSCRIBER_FORMATS, Webhook, WebhookFormat, WebhookOrdering

ORDERING_HELP = (
    "none: every delivery on its own, concurrently; key: deliveries of events with the same ordering_key one at a "
    "time, in publish order; webhook: every delivery one at a time, in publish order (docs/ordering.md)"
)
ORDERING_CHOICES = ", ".join(WebhookOrdering.values)


class WebhookSerializer(serializers.ModelSerializer):
    url = serializers.CharField(
        source="displayed_url",
        read_only=True,
        help_text="for slack, discord and teams, and for a broker (amqp) URL, only a hint: the URL is or carries the credential",
    )
    format = serializers.ChoiceField(choices=SUBSCRIBER_FORMATS, read_only=True)
    ordering = serializers.ChoiceField(choices=WebhookOrdering.values, read_only=True, help_text=ORDERING_HELP)
    secret_hint = serializers.CharField(source="masked_secret", read_only=True)
    state = serializers.SerializerMethodField(
        help_text="active; paused (enabled off: deliveries wait, pending, and go out in order once enabled); "
        "disabled (by the service, see disabled_reason: deliveries end failed)"
    )
    waiting_deliveries = serializers.SerializerMethodField(
        help_text="for a paused webhook, how many deliveries wait for it; null otherwise"
    )
    auth = serializers.SerializerMethodField(help_text="the type and its public fields; the secret is never shown")
    tls_client_cert_set = serializers.SerializerMethodField(help_text="a client certificate is presented (mutual TLS)")
    tls_ca_cert_set = serializers.SerializerMethodField(help_text="the server is verified against its own CA")
    rate_limited_until = serializers.SerializerMethodField(
        help_text="while the rate limit holds deliveries back, until when the queued ones are spread; null otherwise"
    )

    class Meta:
        model = Webhook
        fields = [
            "id",
            "url",
            "events",
            "format",
            "exchange",
            "routing_key",
            "ordering",
            "enabled",
            "state",
            "waiting_deliveries",
            "description",
            "secret_hint",
            "previous_secret_expires_at",
            "disabled_reason",
            "disabled_at",
            "headers",
            "auth",
            "tls_client_cert_set",
            "tls_ca_cert_set",
            "filter",
            "rate_limit",
            "rate_limited_until",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "object"})
    def get_auth(self, webhook: Webhook) -> dict:
        return auth_shown(webhook.auth)

    def get_tls_client_cert_set(self, webhook: Webhook) -> bool:
        return bool(webhook.tls_client_cert)

    def get_tls_ca_cert_set(self, webhook: Webhook) -> bool:
        return bool(webhook.tls_ca_cert)

    @extend_schema_field({"type": "string", "format": "date-time", "nullable": True})
    def get_rate_limited_until(self, webhook: Webhook):
        held = selectors.webhook_rate_held_until(webhook=webhook)
        return serializers.DateTimeField().to_representation(held) if held else None

    @extend_schema_field({"type": "string", "enum": ["active", "paused", "disabled"]})
    def get_state(self, webhook: Webhook) -> str:
        return selectors.webhook_state(webhook)

    @extend_schema_field({"type": "integer", "nullable": True})
    def get_waiting_deliveries(self, webhook: Webhook) -> int | None:
        return selectors.webhook_waiting_count(webhook=webhook) if webhook.paused else None


class WebhookWithSecretSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown only in this response: store it now.")

    class Meta(WebhookSerializer.Meta):
        fields = WebhookSerializer.Meta.fields + ["secret"]
        read_only_fields = fields


@extend_schema_field(
    {
        "type": "string",
        # No whitespace or control character anywhere (url_policy._check_text).
        "pattern": "^(https?://[^/?#@\\s\\u0000-\\u001f\\u007f]+|amqps?://[^/?#\\s\\u0000-\\u001f\\u007f]+)[^\\s\\u0000-\\u001f\\u007f]*$",
        "maxLength": 2048,
    }
)
class WebhookUrlField(StrictCharField):
    pass


@extend_schema_field({"type": "array", "minItems": 1, "items": {"type": "string", "enum": [ALL_EVENTS, *SUBSCRIPTION_NAMES]}})
class EventListField(serializers.ListField):
    child = StrictCharField(max_length=64)

    def to_internal_value(self, data):
        try:
            return services.webhook_validate_events(super().to_internal_value(data))
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict["events"]) from exc


def _pem_field(help_text: str) -> StrictCharField:
    """A write-only PEM text of the webhook's client TLS; empty removes it."""
    return StrictCharField(
        required=False, allow_blank=True, max_length=32768, trim_whitespace=False, write_only=True, help_text=help_text
    )


class WebhookInputSerializer(StrictSerializer):
    url = WebhookUrlField(
        max_length=2048,
        help_text="http(s) URL that receives the POSTs, or amqp(s)://user:password@host:port/vhost of a RabbitMQ "
        "broker to publish to (the password is stored encrypted and never shown again)",
    )
    events = EventListField(default=lambda: [ALL_EVENTS], help_text='event types, or ["*"] for all')
    format = serializers.ChoiceField(choices=SUBSCRIBER_FORMATS, default=WebhookFormat.AGENTBOT)
    exchange = StrictCharField(
        max_length=255,
        allow_blank=True,
        default="",
        help_text="amqp URLs only: the exchange to publish to (empty: the default exchange, which routes by queue name)",
    )
    routing_key = StrictCharField(
        max_length=255,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        help_text="amqp URLs only: the routing key (empty: the event's type, as in message.created)",
    )
    # No default here (a PATCH leaves what is not sent as it is): a new webhook's is the model's, none.
    ordering = serializers.ChoiceField(
        choices=WebhookOrdering.values,
        required=False,
        help_text=f"{ORDERING_HELP}; a new webhook's is none",
        error_messages={"invalid_choice": f'"{{input}}" is not an ordering; choose one of {ORDERING_CHOICES}'},
    )
    description = StrictCharField(max_length=500, allow_blank=True, default="")
    enabled = StrictBooleanField(default=True)
    headers = serializers.JSONField(
        required=False, help_text="headers added to every request, name → value; the service's own cannot be set"
    )
    auth = serializers.JSONField(
        required=False,
        help_text='{"type": "none"}, {"type": "basic", "username", "password"}, {"type": "bearer", "token"} or '
        '{"type": "oauth2", "token_url", "client_id", "client_secret", "scope", "audience"}; the secret is write-only '
        "(left out on a change of the same type, the stored one stays)",
    )
    filter = serializers.JSONField(
        required=False, allow_null=True, help_text='a condition on the event\'s data, as in {"channel": {"$in": ["whatsapp"]}}'
    )
    rate_limit = serializers.JSONField(
        required=False, allow_null=True, help_text='{"per_second": N} or {"per_minute": N}; null for none'
    )
    tls_client_cert = _pem_field("PEM client certificate for mutual TLS (with tls_client_key); empty removes it")
    tls_client_key = _pem_field("PEM private key of the client certificate; stored encrypted, never shown")
    tls_ca_cert = _pem_field("PEM CA certificate(s) to verify this webhook's server with, instead of the public CAs")
    read_only_names = WebhookWithSecretSerializer.Meta.fields


class WebhookPatchSerializer(PatchSerializer, WebhookInputSerializer):
    pass


class RotateInputSerializer(StrictSerializer):
    grace_seconds = serializers.IntegerField(
        required=False, min_value=0, max_value=30 * 24 * 3600, help_text="how long the old secret keeps signing (default 24 h)"
    )


def webhook_of(request, webhook_id: str) -> Webhook:
    return get_object_or_404(subscriber_webhooks(request), pk=webhook_id)


def subscriber_webhooks(request):
    """The site's webhooks; an integration's connector webhook is managed with the integration."""
    return Webhook.objects.filter(site=site_of(request), connector="")


class WebhookListView(GenericAPIView):
    serializer_class = WebhookSerializer

    @extend_schema(responses=WebhookSerializer(many=True), summary="List webhooks")
    def get(self, request):
        page = self.paginate_queryset(subscriber_webhooks(request).order_by("-created_at"))
        return self.get_paginated_response(WebhookSerializer(page, many=True).data)

    @extend_schema(request=WebhookInputSerializer, responses={201: WebhookWithSecretSerializer}, summary="Create a webhook")
    def post(self, request):
        data = WebhookInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        webhook = services.webhook_create(site=site_of(request), **data.validated_data)
        return Response(WebhookWithSecretSerializer(webhook).data, status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    @extend_schema(responses=WebhookSerializer, summary="Get a webhook")
    def get(self, request, webhook_id):
        return Response(WebhookSerializer(webhook_of(request, webhook_id)).data)

    @extend_schema(request=WebhookPatchSerializer, responses=WebhookSerializer, summary="Change a webhook")
    def patch(self, request, webhook_id):
        webhook = webhook_of(request, webhook_id)
        webhook = services.webhook_update(webhook=webhook, **valid_input(WebhookPatchSerializer, request))
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(responses={204: None}, summary="Delete a webhook and its delivery log")
    def delete(self, request, webhook_id):
        services.webhook_delete(webhook=webhook_of(request, webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateSecretView(APIView):
    @extend_schema(request=RotateInputSerializer, responses=WebhookWithSecretSerializer, summary="Rotate the signing secret")
    def post(self, request, webhook_id):
        webhook = webhook_of(request, webhook_id)
        data = RotateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        grace = data.validated_data.get("grace_seconds")
        webhook = services.webhook_rotate_secret(webhook=webhook, grace=None if grace is None else timedelta(seconds=grace))
        return Response(WebhookWithSecretSerializer(webhook).data)


class FilterTestInputSerializer(StrictSerializer):
    data = serializers.JSONField(help_text="an example event's data")
    filter = serializers.JSONField(
        required=False, allow_null=True, help_text="a filter to try instead of the webhook's own (not saved)"
    )


class FilterTestOutputSerializer(serializers.Serializer):
    matches = serializers.BooleanField(help_text="whether an event with this data passes the filter")
    filter = serializers.JSONField(help_text="the filter that was tried")


class WebhookFilterTestView(APIView):
    @extend_schema(
        request=FilterTestInputSerializer,
        responses=FilterTestOutputSerializer,
        summary="Try the webhook's filter (or another) on example data",
    )
    def post(self, request, webhook_id):
        webhook = webhook_of(request, webhook_id)
        given = valid_input(FilterTestInputSerializer, request)
        condition = services.filter_validate(given["filter"]) if "filter" in given else webhook.filter
        matches = filter_matches(condition, given["data"])
        return Response(FilterTestOutputSerializer({"matches": matches, "filter": condition}).data)
