"""The webchat's part of the integrations' REST API (inbound/api.py): the origins whose pages may
open the widget, as shown and as taken. (Its embed snippet needs the service's public URL: api.py.)"""

from rest_framework import serializers

from core.api.fields import StrictCharField
from inbound.connectors.webchat.services import origins_of


class OriginListField(serializers.ListField):
    """Webchat origins as a JSON list of strings; the service gets them one per line."""

    child = StrictCharField(max_length=300)

    def to_internal_value(self, data):
        origins = super().to_internal_value(data)
        # The list's own limits (max_length: how many origins) apply to the list, not to the text
        # it becomes (a single origin of 101 characters was refused as "more than 100 elements").
        super().run_validators(origins)
        return "\n".join(origins)

    def run_validators(self, value):
        pass  # done on the list in to_internal_value


class WebchatOutput(serializers.Serializer):
    # Mixed into IntegrationSerializer.

    allowed_origins = serializers.SerializerMethodField(help_text="Webchat: the origins whose pages may open the widget.")

    def get_allowed_origins(self, integration) -> list[str]:
        return origins_of(integration)


class WebchatInput(serializers.Serializer):
    # Mixed into IntegrationInputSerializer.

    allowed_origins = OriginListField(
        required=False,
        max_length=100,
        help_text="Webchat: the origins (scheme://host[:port]) whose pages may open the widget; empty: only this service's own pages",
    )
