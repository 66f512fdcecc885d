"""Serializer fields that accept exactly what the OpenAPI schema says they accept."""

from django.core.validators import RegexValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

# A character that trimming leaves (Python's str.strip, which DRF's CharField applies): a string
# without one is blank once trimmed. In the schema as a `pattern`, so a client or a fuzzer knows
# that "   " is refused where text is required.
NOT_ONLY_WHITESPACE = r"[^\s\u001c-\u001f\u0085]"


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField would quietly turn 12 or true into text."""

    default_error_messages = {"not_a_string": "must be a JSON string"}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if not self.allow_blank and self.trim_whitespace:
            # Never fails here (a blank string is refused before validators run); it documents that.
            self.validators.append(RegexValidator(NOT_ONLY_WHITESPACE))

    def run_validation(self, data=empty):
        # The schema's maxLength counts the string as sent. DRF counts it after trimming surrounding
        # whitespace, and answers a blank string that a field allows before any length check: 600
        # spaces would be taken as "" where the schema says at most 500 characters.
        if isinstance(data, str) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().run_validation(data)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.JSONField):
    """Any JSON object (not an array, string or null)."""

    default_error_messages = {"not_an_object": "must be a JSON object"}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_an_object")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false, not "yes", 1 or "on" (which DRF's BooleanField would take)."""

    default_error_messages = {"not_a_boolean": "must be true or false"}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("not_a_boolean")
        return data
