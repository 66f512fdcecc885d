"""Serializer fields that accept exactly what the OpenAPI schema says they accept."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField would quietly turn 12 or true into text."""

    default_error_messages = {"not_a_string": "must be a JSON string"}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        # The schema's maxLength counts the string as sent; DRF would count it after trimming
        # surrounding whitespace, and take a longer one than the schema allows.
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
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
