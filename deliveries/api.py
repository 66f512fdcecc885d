"""REST API for events and the delivery log: input serializer → service → output serializer."""

from django.conf import settings
from django.core.validators import MaxLengthValidator, MinLengthValidator, ProhibitNullCharactersValidator, RegexValidator
from django.db import transaction
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.validators import ProhibitSurrogateCharactersValidator
from rest_framework.views import APIView

from core import jsjson, jsonlimits
from core.api.auth import api_key_rate_take, site_of
from core.api.errors import refusal
from core.api.fields import NOT_ONLY_WHITESPACE, JSONObjectField, StrictCharField
from core.api.serializers import StrictSerializer, no_input
from core.errors import Refused
from core.services import api_key_authenticate
from deliveries import selectors
from deliveries.models import Attempt, Delivery, Event
from deliveries.services import operator, publish
from subscriptions.api import webhook_of
from subscriptions.event_types import CATALOGUE


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = ["number", "at", "status_code", "response_body", "duration_ms", "error"]


class DeliverySerializer(serializers.ModelSerializer):
    event = serializers.CharField(source="event_id")
    event_type = serializers.CharField(source="event.type")
    webhook = serializers.CharField(source="webhook_id")
    ordering_key = serializers.CharField(
        allow_null=True,
        help_text="the key this delivery is ordered by on its webhook: null when the webhook's ordering is none "
        "(or the event has no key), empty when the whole webhook is ordered",
    )
    waiting_behind = serializers.CharField(
        allow_null=True,
        help_text="for a pending delivery of an ordered webhook: the delivery of its key that must succeed or fail "
        "first (the key's head); null when nothing holds it",
    )
    attempts = AttemptSerializer(many=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event",
            "event_type",
            "webhook",
            "status",
            "attempt_count",
            "next_attempt_at",
            "last_attempt_at",
            "last_status_code",
            "last_error",
            "ordering_key",
            "waiting_behind",
            "created_at",
            "attempts",
        ]


class EventDeliverySerializer(serializers.ModelSerializer):
    webhook = serializers.CharField(source="webhook_id")

    class Meta:
        model = Delivery
        fields = ["id", "webhook", "status", "attempt_count", "next_attempt_at"]


# GET /events/{id} shows at most this many of the event's deliveries (by id); the rest are paged at
# GET /events/{id}/deliveries, whose URL `deliveries_next` gives (docs/limits.md).
EVENT_DELIVERIES_SHOWN = 100


class EventSerializer(serializers.ModelSerializer):
    """An event with its first EVENT_DELIVERIES_SHOWN deliveries (`event_deliveries_shown` sets them)."""

    event = serializers.CharField(source="type")
    deliveries = EventDeliverySerializer(many=True, source="deliveries_shown")
    deliveries_count = serializers.IntegerField(help_text="how many deliveries the event has in all")
    deliveries_next = serializers.CharField(
        allow_null=True, help_text="GET /api/v1/events/{id}/deliveries when `deliveries` does not hold them all, else null"
    )

    class Meta:
        model = Event
        fields = [
            "id",
            "event",
            "data",
            "idempotency_key",
            "ordering_key",
            "created_at",
            "deliveries",
            "deliveries_count",
            "deliveries_next",
        ]


def event_deliveries_next(event_id: str, count: int) -> str | None:
    return f"/api/v1/events/{event_id}/deliveries" if count > EVENT_DELIVERIES_SHOWN else None


def event_deliveries_shown(event: Event) -> Event:
    """The event with what EventSerializer shows of its deliveries: two small queries, however
    many it has."""
    event.deliveries_shown = list(Delivery.objects.filter(event=event).order_by("id")[:EVENT_DELIVERIES_SHOWN])
    event.deliveries_count = (
        len(event.deliveries_shown)
        if len(event.deliveries_shown) < EVENT_DELIVERIES_SHOWN
        else Delivery.objects.filter(event=event).count()
    )
    event.deliveries_next = event_deliveries_next(event.id, event.deliveries_count)
    return event


_MOMENT = serializers.DateTimeField()


def published_body(event: Event) -> dict:
    """EventSerializer's shape of an event just published, from what the publish stored
    (`event.published`): reading it back and serialising it through the ORM cost the web process
    more than the publish itself. tests/deliveries/test_api.py checks it equals GET /events/{id}."""
    published: publish.Published = event.published
    due = _MOMENT.to_representation(published.at)
    shown = sorted(published.deliveries)[:EVENT_DELIVERIES_SHOWN]
    return {
        "id": event.id,
        "event": event.type,
        "data": jsjson.parse(published.data_json),
        "idempotency_key": event.idempotency_key,
        "ordering_key": event.ordering_key,
        "created_at": _MOMENT.to_representation(event.created_at),
        "deliveries": [
            {
                "id": delivery_id,
                "webhook": webhook_id,
                "status": Delivery.Status.PENDING.value,
                "attempt_count": 0,
                "next_attempt_at": due,
            }
            for delivery_id, webhook_id in shown
        ],
        "deliveries_count": len(published.deliveries),
        "deliveries_next": event_deliveries_next(event.id, len(published.deliveries)),
    }


@extend_schema_field({"type": "string", "enum": sorted(CATALOGUE)})
class EventTypeField(StrictCharField):
    """One of the catalogue's types (what event_validate accepts), listed in the schema."""


class EventInputSerializer(StrictSerializer):
    event = EventTypeField(max_length=64, help_text="an event type from GET /api/v1/event-types")
    data = JSONObjectField(help_text="the event's data: a JSON object")
    idempotency_key = StrictCharField(
        max_length=255, required=False, allow_blank=False, help_text="publishing again with the same key returns the first event"
    )
    ordering_key = StrictCharField(
        min_length=1,
        max_length=200,
        required=False,
        allow_blank=False,
        trim_whitespace=False,
        help_text="events with the same key reach a webhook whose ordering is key one at a time, in publish order "
        "(a conversation's id, an order number)",
    )
    read_only_names = EventSerializer.Meta.fields


def publish_arguments(validated: dict) -> dict:
    """EventInputSerializer's fields as `event_publish`'s keyword arguments (and a batch item's):
    a field added to the input is passed on here, for the single publish and every batch item."""
    return {
        "event_type": validated["event"],
        "data": validated["data"],
        "idempotency_key": validated.get("idempotency_key"),
        "ordering_key": validated.get("ordering_key"),
    }


class EventBatchEnvelope(StrictSerializer):
    """The batch as read: a list of 1 to 500 items, each read on its own by EventInputSerializer
    so that one refused item refuses only itself."""

    events = serializers.ListField(
        child=serializers.JSONField(),
        allow_empty=False,
        max_length=publish.BATCH_MAX_EVENTS,
        error_messages={
            "max_length": f"a batch holds at most {publish.BATCH_MAX_EVENTS} events; send the rest in another request",
            "empty": "send at least one event",
        },
    )


class EventBatchInputSerializer(StrictSerializer):
    """The batch as the schema shows it."""

    events = serializers.ListField(
        child=EventInputSerializer(),
        min_length=1,
        max_length=publish.BATCH_MAX_EVENTS,
        help_text=f"1 to {publish.BATCH_MAX_EVENTS} events, each as POST /api/v1/events takes it",
    )


class EventBatchResultSerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="what POST /api/v1/events would have answered for this event alone")
    result = serializers.ChoiceField(choices=["created", "existing", "refused"])
    id = serializers.CharField(required=False, help_text="the event's id (created, existing)")
    deliveries = serializers.IntegerField(required=False, help_text="deliveries stored for a created event")
    error = serializers.CharField(required=False, help_text="refused: the error code a single publish gives")
    message = serializers.CharField(required=False, help_text="refused: what is wrong, for a person")
    fields = serializers.DictField(required=False, help_text="refused by a field's check: the messages by field")


class EventBatchSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    existing = serializers.IntegerField()
    refused = serializers.IntegerField()
    results = EventBatchResultSerializer(many=True, help_text="one per event sent, in the same order")


def batch_result(result: publish.BatchResult) -> dict:
    if result.outcome == "created":
        return {"status": 201, "result": "created", "id": result.event_id, "deliveries": result.deliveries}
    if result.outcome == "existing":
        return {"status": 200, "result": "existing", "id": result.event_id}
    code, body = refusal(result.error)
    return {"status": code, "result": "refused", **body}


BATCH_EXAMPLE_REQUEST = {
    "events": [
        {"event": "ticket.created", "data": {"ticket_id": "T-1041", "subject": "Refund"}, "idempotency_key": "crm-1041"},
        {"event": "ticket.created", "data": {"ticket_id": "T-1041", "subject": "Refund"}, "idempotency_key": "crm-1041"},
        {"event": "ticket.created", "data": {"ticket_id": "T-1042", "amount_cents": 9007199254740993}},
    ]
}
BATCH_EXAMPLE_RESPONSE = {
    "created": 1,
    "existing": 1,
    "refused": 1,
    "results": [
        {"status": 201, "result": "created", "id": "evt_01jd5x1k2m3n4p5q6r7s8t9v0w", "deliveries": 2},
        {"status": 200, "result": "existing", "id": "evt_01jd5x1k2m3n4p5q6r7s8t9v0w"},
        {
            "status": 400,
            "result": "refused",
            "error": "invalid_event",
            "message": "data.amount_cents is 9007199254740993, outside JavaScript's safe integer range (±9007199254740991): "
            "a JavaScript receiver would read a different number. Send it as a string instead.",
        },
    ],
}


class EventTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    schema = serializers.DictField()
    example = serializers.DictField()


def _deliveries(request):
    attempts = Prefetch("attempts", queryset=Attempt.objects.order_by("number"))
    return selectors.deliveries_with_waiting_behind(
        Delivery.objects.filter(event__site=site_of(request))
        .select_related("event")
        .prefetch_related(attempts)
        .order_by("-created_at")
    )


STATUS_FILTER = OpenApiParameter("status", str, enum=[s.value for s in Delivery.Status], required=False)


class DeliveryListView(GenericAPIView):
    serializer_class = DeliverySerializer
    query_filters = ("status",)

    def list(self, request, queryset):
        wanted = request.query_params.get("status")
        if wanted is not None:
            if wanted not in Delivery.Status.values:
                raise serializers.ValidationError({"status": f"status is one of {', '.join(Delivery.Status.values)}"})
            queryset = queryset.filter(status=wanted)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)

    @extend_schema(parameters=[STATUS_FILTER], responses=DeliverySerializer(many=True), summary="The delivery log")
    def get(self, request):
        return self.list(request, _deliveries(request))


class WebhookDeliveryListView(DeliveryListView):
    @extend_schema(parameters=[STATUS_FILTER], responses=DeliverySerializer(many=True), summary="A webhook's deliveries")
    def get(self, request, webhook_id):
        webhook = webhook_of(request, webhook_id)
        return self.list(request, _deliveries(request).filter(webhook=webhook))


class DeliveryDetailView(APIView):
    @extend_schema(responses=DeliverySerializer, summary="One delivery with every attempt")
    def get(self, request, delivery_id):
        return Response(DeliverySerializer(get_object_or_404(_deliveries(request), pk=delivery_id)).data)


class DeliveryRetryView(APIView):
    @extend_schema(request=None, responses={202: DeliverySerializer}, summary="Send a delivery again now")
    def post(self, request, delivery_id):
        delivery = get_object_or_404(_deliveries(request), pk=delivery_id)
        no_input(request)
        operator.delivery_retry(delivery=delivery)
        return Response(DeliverySerializer(_deliveries(request).get(pk=delivery_id)).data, status=status.HTTP_202_ACCEPTED)


class DeliverySkipView(APIView):
    @extend_schema(
        request=None,
        responses={200: DeliverySerializer},
        summary="Skip a pending delivery",
        description='Ends a pending delivery as failed with the reason "skipped by API key …", without sending it; '
        "the next delivery of its ordering key is sent at once. 409 while it is being sent, or when it is not pending.",
    )
    def post(self, request, delivery_id):
        delivery = get_object_or_404(_deliveries(request), pk=delivery_id)
        no_input(request)
        key = request.auth
        operator.delivery_skip(delivery=delivery, by=f"API key {key.name or key.prefix}")
        return Response(DeliverySerializer(_deliveries(request).get(pk=delivery_id)).data)


def _events(request):
    return _events_of(site_of(request))


def _events_of(site):
    return Event.objects.filter(site=site)


class EventPublishView(APIView):
    @extend_schema(
        request=EventInputSerializer,
        responses={201: EventSerializer, 200: EventSerializer},
        summary="Publish an event to every subscribed webhook",
        description="201 with the new event; 200 with the first event when the idempotency_key was used before.",
    )
    def post(self, request):
        data = EventInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # The response is read in the publish's transaction: a database lost before COMMIT is an
        # error (503) with nothing stored, never an event stored behind an error.
        with transaction.atomic():
            event, created = publish.event_publish(site=site_of(request), **publish_arguments(data.validated_data))
            # A new event is shown as the publish stored it; a replayed key's event is read back.
            body = published_body(event) if created else EventSerializer(event_deliveries_shown(event)).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


_publish_view = EventPublishView.as_view()
_render = JSONRenderer().render
_EVENT_FIELDS = frozenset(EventInputSerializer().fields)  # (the body's names, checked as _plain_input says)


@csrf_exempt
def event_publish_endpoint(request):
    """POST /api/v1/events. The usual publish (a valid key, a plain JSON body that the input
    serializer takes as it is) is served here without DRF's request, negotiation, serializer and
    response machinery, which cost the web process more CPU than the publish itself; everything
    else (another method, any doubt about the body or the key, a refused event) goes to
    EventPublishView, which gives the answer, errors included. tests/deliveries/test_api.py checks
    both give the same 201 and that each check still refuses."""
    return _publish_plainly(request) or _publish_view(request)


PUBLISH_ALLOW = "POST, OPTIONS"  # the Allow header DRF's views answer with


def _publish_plainly(request) -> HttpResponse | None:
    if request.method != "POST":
        return None
    answer = publish_plain(
        content_type=request.META.get("CONTENT_TYPE"),
        authorization=request.META.get("HTTP_AUTHORIZATION", ""),
        length=request.META.get("CONTENT_LENGTH", ""),
        body=lambda: request.body,
    )
    if answer is None:
        return None
    status_code, content = answer
    response = HttpResponse(content, status=status_code, content_type="application/json")
    response["Allow"] = PUBLISH_ALLOW
    return response


def publish_plain(*, content_type: str | None, authorization: str, length: str, body) -> tuple[int, bytes] | None:
    """The lean publish of a POST /api/v1/events, from its Content-Type, Authorization and
    Content-Length headers and its body (`body()` reads it): (201 or 200, the rendered JSON), or
    None, with nothing stored, for anything EventPublishView must answer. Django's request cycle
    calls it (`_publish_plainly`), and so does agentbot/serving.py's `PlainPublish` below it."""
    if content_type != "application/json":
        return None
    scheme, _, plain = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not length.isdigit() or int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        return None
    plain = plain.strip()
    key = api_key_authenticate(plain=plain) if plain else None
    if key is None:
        return None
    try:
        given = jsonlimits.loads(body())
    except jsonlimits.JsonRefused:
        return None
    if not isinstance(given, dict) or not given.keys() <= _EVENT_FIELDS or not _plain_input(given):
        return None
    if not api_key_rate_take(key).allowed:
        return None  # the view answers the 429, with its Retry-After
    try:
        with transaction.atomic():
            event, created = publish.event_publish(site=key.site, **publish_arguments(given))
            shown = published_body(event) if created else EventSerializer(event_deliveries_shown(event)).data
    except Refused:
        return None  # nothing stored: the view refuses it in its own words
    return (201 if created else 200), _render(shown)


def _plain_input(given: dict) -> bool:
    """What EventInputSerializer takes unchanged: its required fields present, `data` an object,
    and every string as its field would keep it (not blank, nothing to trim, within its lengths,
    text PostgreSQL can store). A field added to the serializer is checked here as it is declared;
    one of another kind, or with a validator of its own, sends the request to the view."""
    for name, field in _INPUT_FIELDS.items():
        if name not in given:
            if field.required:
                return False
            continue
        value = given[name]
        if isinstance(field, JSONObjectField):
            if not isinstance(value, dict):
                return False
        elif not (isinstance(field, StrictCharField) and _plain_string(value, field)):
            return False
    return True


_PLAIN_VALIDATORS = (
    MaxLengthValidator,
    MinLengthValidator,
    ProhibitNullCharactersValidator,
    ProhibitSurrogateCharactersValidator,
)


def _plain_string(value, field: StrictCharField) -> bool:
    return (
        isinstance(value, str)
        and value != ""
        and value.strip() == value
        and len(value) <= (field.max_length or len(value))
        and len(value) >= (field.min_length or 0)
        and not field.allow_blank
        and all(isinstance(v, _PLAIN_VALIDATORS) or _only_documents_not_blank(v) for v in field.validators)
        and publish.text_is_storable(value)
    )


def _only_documents_not_blank(validator) -> bool:
    # StrictCharField's pattern: a string that is not empty and has nothing to trim passes it.
    return isinstance(validator, RegexValidator) and validator.regex.pattern == NOT_ONLY_WHITESPACE


_INPUT_FIELDS = EventInputSerializer().fields


class EventBatchPublishView(APIView):
    @extend_schema(
        request=EventBatchInputSerializer,
        responses={200: EventBatchSerializer},
        summary="Publish many events in one request",
        description=(
            f"Up to {publish.BATCH_MAX_EVENTS} events (and a body of at most 1 MB). The answer is 200 with one "
            "result per event, in the order sent: `created` (status 201, the new event's id), `existing` (status "
            "200: its idempotency_key named an event published before, or earlier in the batch) or `refused` "
            "(the status and error a publish of that event alone would get). A refused event stops none of the "
            "others. A body that is not a batch (not an object with a list of 1 to 500 events) is a 400, and a "
            "body over 1 MB a 413, with nothing stored."
        ),
        examples=[
            OpenApiExample("A batch of three", value=BATCH_EXAMPLE_REQUEST, request_only=True),
            OpenApiExample("One created, one repeated key, one refused", value=BATCH_EXAMPLE_RESPONSE, response_only=True),
        ],
    )
    def post(self, request):
        envelope = EventBatchEnvelope(data=request.data)
        envelope.is_valid(raise_exception=True)
        items = []
        for raw in envelope.validated_data["events"]:
            if isinstance(raw, dict) and raw.keys() <= _EVENT_FIELDS and _plain_input(raw):
                items.append(publish.BatchItem(**publish_arguments(raw)))  # what the serializer takes unchanged
                continue
            item = EventInputSerializer(data=raw)
            if item.is_valid():
                items.append(publish.BatchItem(**publish_arguments(item.validated_data)))
            else:
                items.append(publish.BatchItem(refused=serializers.ValidationError(item.errors)))
        with transaction.atomic():
            results = [batch_result(r) for r in publish.events_publish(site=site_of(request), items=items)]
        counts = {outcome: sum(1 for r in results if r["result"] == outcome) for outcome in ("created", "existing", "refused")}
        return Response({**counts, "results": results})


class EventDetailView(APIView):
    @extend_schema(
        responses=EventSerializer,
        summary="An event and its fan-out",
        description=f"At most {EVENT_DELIVERIES_SHOWN} deliveries, by id; deliveries_next pages the rest.",
    )
    def get(self, request, event_id):
        return Response(EventSerializer(event_deliveries_shown(get_object_or_404(_events(request), pk=event_id))).data)


class EventDeliveryListView(DeliveryListView):
    @extend_schema(parameters=[STATUS_FILTER], responses=DeliverySerializer(many=True), summary="An event's deliveries")
    def get(self, request, event_id):
        event = get_object_or_404(_events(request), pk=event_id)
        return self.list(request, _deliveries(request).filter(event=event))


class WebhookTestView(APIView):
    @extend_schema(
        request=None,
        responses={
            202: inline_serializer("TestSent", {"event_id": serializers.CharField(), "delivery_id": serializers.CharField()})
        },
        summary="Send a webhook.test event to this webhook",
    )
    def post(self, request, webhook_id):
        webhook = webhook_of(request, webhook_id)
        no_input(request)
        with transaction.atomic():
            event = operator.webhook_send_test(webhook=webhook)
        return Response({"event_id": event.id, "delivery_id": event.deliveries.get().id}, status=status.HTTP_202_ACCEPTED)


class EventTypeListView(GenericAPIView):
    serializer_class = EventTypeSerializer

    @extend_schema(responses=EventTypeSerializer(many=True), summary="The event catalogue")
    def get(self, request):
        catalogue = [
            {"name": t.name, "description": t.description, "schema": t.schema, "example": t.example} for t in CATALOGUE.values()
        ]
        return self.get_paginated_response(self.paginate_queryset(catalogue))


# The schema (drf-spectacular) reads the operation from the view the endpoint stands in front of.
event_publish_endpoint.cls = EventPublishView
event_publish_endpoint.initkwargs = {}
