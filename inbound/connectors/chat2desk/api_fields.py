"""Chat2Desk's part of the integrations' REST API (inbound/api.py): its settings as shown and as taken."""

from rest_framework import serializers

from core.api.fields import StrictCharField


class Chat2DeskOutput(serializers.Serializer):
    # Mixed into IntegrationSerializer; declared as the model's fields were, so the schema stays the same.

    api_url = serializers.URLField(
        max_length=500,
        allow_blank=True,
        required=False,
        help_text="Chat2Desk's API for your account's instance (global or Europe), as in https://api.chat2desk.com",
    )
    webhook_registered = serializers.SerializerMethodField()
    webhook_registered_at = serializers.DateTimeField(read_only=True, allow_null=True)
    api_token_set = serializers.SerializerMethodField()

    def get_webhook_registered(self, integration) -> bool:
        return integration.webhook_registered_at is not None

    def get_api_token_set(self, integration) -> bool:
        return bool(integration.api_token)


class Chat2DeskInput(serializers.Serializer):
    # Mixed into IntegrationInputSerializer.

    api_url = StrictCharField(
        max_length=500, allow_blank=True, default="", help_text="Chat2Desk's API base URL, as in https://api.chat2desk.com"
    )
    api_token = StrictCharField(
        max_length=500, allow_blank=True, default="", help_text="Chat2Desk's API token; write-only, stored encrypted"
    )
