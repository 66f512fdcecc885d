"""The webhook channel's part of the integrations' REST API (inbound/api.py): an instance's
settings (the webhook channel's document) as shown and as taken; on other connectors they keep their defaults."""

from rest_framework import serializers

from core.api.fields import StrictBooleanField, StrictCharField
from inbound.models import ApiVersion, ChannelMode, JwtAlgorithm

OUTPUT_FIELDS = [
    "api_version",
    "mode",
    "post_url",
    "polling",
    "jwt_algorithm",
    "client_id",
    "public_key",
    "allow_anonymous",
    "auto_register",
    "jwe_public_key",
]


class WebhookChannelOutput(serializers.Serializer):
    # Mixed into IntegrationSerializer; declared as the model's fields were, so the schema stays the same.

    api_version = serializers.ChoiceField(choices=ApiVersion.choices, required=False)
    mode = serializers.ChoiceField(choices=ChannelMode.choices, required=False)
    # A plain string: "" (no POST_URL) would match both branches of a URL field's schema.
    post_url = serializers.CharField(
        read_only=True, help_text="Webhook channel, async mode: where the agent's messages are posted."
    )
    polling = serializers.BooleanField(
        required=False, help_text="Webhook channel v2, synchronous mode: answer with a pollId when the agent is not done."
    )
    jwt_algorithm = serializers.ChoiceField(choices=JwtAlgorithm.choices, required=False, label="JWT signing algorithm")
    client_id = serializers.CharField(read_only=True)
    public_key = serializers.CharField(required=False, allow_blank=True, help_text="RS256/RS512: the client's public key, PEM.")
    allow_anonymous = serializers.BooleanField(
        required=False, help_text="Webhook channel: a request without from.id gets an anonymous user identity."
    )
    jwe_public_key = serializers.CharField(
        read_only=True,
        help_text="Webhook channel: the RSA public key (PEM) a client may encrypt its JWT to "
        "(JWE: RSA-OAEP or RSA-OAEP-256, A128GCM or A256GCM); empty on other connectors.",
    )
    auto_register = serializers.BooleanField(
        required=False, help_text="Webhook channel: false refuses a user identity the site has never seen."
    )


class WebhookChannelInput(serializers.Serializer):
    # Mixed into IntegrationInputSerializer: only for connector_type webhook, and left out otherwise.

    api_version = serializers.ChoiceField(choices=ApiVersion.choices, required=False, help_text="Webhook channel: v1 or v2")
    mode = serializers.ChoiceField(choices=ChannelMode.choices, required=False, help_text="Webhook channel: sync or async")
    post_url = StrictCharField(
        max_length=2048,
        allow_blank=True,
        required=False,
        help_text="Webhook channel, async mode: where the agent's messages are posted",
    )
    polling = StrictBooleanField(
        required=False, help_text="Webhook channel, v2 sync: answer with a pollId when the agent is not done"
    )
    jwt_algorithm = serializers.ChoiceField(
        choices=JwtAlgorithm.choices, required=False, help_text="Webhook channel: how your JWTs are signed"
    )
    public_key = StrictCharField(
        max_length=10000, allow_blank=True, required=False, help_text="Webhook channel, RS256/RS512: your public key (PEM)"
    )
    allow_anonymous = StrictBooleanField(
        required=False, help_text="Webhook channel: a request without from.id gets an anonymous user identity (default false)"
    )
    auto_register = StrictBooleanField(
        required=False, help_text="Webhook channel: false refuses a user identity the site has never seen (default true)"
    )
