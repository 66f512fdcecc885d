"""REST API for events and the delivery log: input serializer → service → output serializer."""

from django.db import transaction
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.auth import site_of
from core.api.fields import JSONObjectField, StrictCharField
from core.api.serializers import StrictSerializer, no_input
from deliveries import jsjson, selectors
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
    return Event.objects.filter(site=site_of(request))


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
            event, created = publish.event_publish(
                site=site_of(request),
                event_type=data.validated_data["event"],
                data=data.validated_data["data"],
                idempotency_key=data.validated_data.get("idempotency_key"),
                ordering_key=data.validated_data.get("ordering_key"),
            )
            # A new event is shown as the publish stored it; a replayed key's event is read back.
            body = published_body(event) if created else EventSerializer(event_deliveries_shown(event)).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


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
