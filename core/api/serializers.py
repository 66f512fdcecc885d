"""Input serializers of the REST API: a body is read by a serializer that refuses every field it does
not know, so a misspelt name (`grace_period_seconds` for `grace_seconds`) is a 400 naming it,
never a value silently dropped for the default. Free-form values (an event's `data`, a
conversation's `source`) are one field each: what is inside them is not checked here.

The OpenAPI document says the same (`additionalProperties: false` on every request body's object,
see agentbot.schema.refuse_unknown_request_fields)."""

from collections.abc import Iterable

from rest_framework import serializers
from rest_framework.fields import empty


def _field_list(names: Iterable[str]) -> str:
    names = list(names)
    return f"the fields are {', '.join(names)}" if names else "this request takes no fields"


class StrictSerializer(serializers.Serializer):
    """A field not listed here is refused with a 400 that names it."""

    # (The docstring above is the OpenAPI description of every strict body that has none of its own.)
    # Refuses fields it does not know, nested ones included (each nested serializer is strict too).
    # `read_only_names`: the resource's fields a response shows but a request cannot set (`id`,
    # `created_at`, a secret); sending one is refused all the same, with a message that says why.
    read_only_names: Iterable[str] = ()

    def to_internal_value(self, data):
        unknown = {}
        if isinstance(data, dict):
            known = _field_list(self.fields)
            read_only = set(self.read_only_names)
            for name in data:
                if name not in self.fields:
                    why = " (read-only here)" if name in read_only else ""
                    unknown[str(name)] = [f"unknown field{why}; {known}"]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not unknown:
                raise
            # The unknown names first: a misspelt field often also leaves a required one missing.
            detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            raise serializers.ValidationError({**unknown, **detail}) from exc
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class PatchSerializer(StrictSerializer):
    """Any of the fields, at least one of them; a field not listed here is refused with a 400 that names it."""

    # The input serializer it extends gives its fields the defaults a create fills in. A PATCH
    # changes only the fields it sends (DRF skips defaults in a partial update), so its fields carry
    # none: the OpenAPI document then shows none, and a client generated from it does not send a
    # create's default for every field it was not asked to change.

    def __init__(self, *args, **kwargs):
        super().__init__(*args, partial=True, **kwargs)

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            field.default = empty
            field.required = False
        return fields

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError(f"send at least one of {', '.join(self.fields)}")
        return super().validate(attrs)


class NoInputSerializer(StrictSerializer):
    """The body of an action that takes none (`…/close`, `…/retry`): nothing, `{}` or `null`."""

    def to_internal_value(self, data):
        return super().to_internal_value({} if data is None else data)

    def validate_empty_values(self, data):
        if data is None:
            return True, {}
        return super().validate_empty_values(data)


def valid_input(serializer_class: type[serializers.Serializer], request) -> dict:
    """The request's body read by `serializer_class`; a ValidationError (a 400) when it is not valid."""
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def no_input(request) -> None:
    """Refuses a body with fields on an action that takes none, rather than ignoring them."""
    valid_input(NoInputSerializer, request)
