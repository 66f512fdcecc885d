"""REST API of the agent's domain: input serializer → service → output serializer. Each write
publishes its event (see domain.services)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.auth import site_of
from core.api.fields import JSONObjectField, StrictCharField
from core.api.serializers import PatchSerializer, StrictSerializer, no_input, valid_input
from core.vocabulary import Channel, SenderType, TicketPriority, TicketStatus
from domain import event_data, services
from domain.models import Appointment, Conversation, Lead, Message, Ticket


# --- input ------------------------------------------------------------------------------------
class OptionalText(StrictCharField):
    """A text field that may be left out, empty or null; all three mean "not known" ("")."""

    def __init__(self, **kwargs):
        super().__init__(required=False, allow_blank=True, allow_null=True, default="", **kwargs)

    def validate_empty_values(self, data):
        if data is None:
            return True, ""
        return super().validate_empty_values(data)


class OptionalEmail(OptionalText, serializers.EmailField):
    pass


class VisitorInputSerializer(StrictSerializer):
    name = OptionalText(max_length=200)
    email = OptionalEmail(max_length=254)
    phone = OptionalText(max_length=40)


class ConversationInputSerializer(StrictSerializer):
    channel = serializers.ChoiceField(choices=Channel.values)
    visitor = VisitorInputSerializer(required=False)
    page_url = OptionalText(max_length=2048)
    source = JSONObjectField(
        required=False, help_text='the channel\'s identifiers of the visitor, as in {"chatId": 123456789} for telegram'
    )


class MessageInputSerializer(StrictSerializer):
    sender_type = serializers.ChoiceField(choices=SenderType.values)
    body = StrictCharField(max_length=20000)


class HandoffInputSerializer(StrictSerializer):
    reason = OptionalText(max_length=2000, help_text="why a human is needed")


class TicketInputSerializer(StrictSerializer):
    conversation_id = OptionalText(max_length=64)
    subject = StrictCharField(max_length=300)
    status = serializers.ChoiceField(choices=TicketStatus.values, default=TicketStatus.OPEN)
    priority = serializers.ChoiceField(choices=TicketPriority.values, default=TicketPriority.NORMAL)
    assignee = OptionalText(max_length=200)


class TicketPatchSerializer(PatchSerializer):
    subject = StrictCharField(max_length=300, required=False)
    status = serializers.ChoiceField(choices=TicketStatus.values, required=False)
    priority = serializers.ChoiceField(choices=TicketPriority.values, required=False)
    assignee = StrictCharField(max_length=200, required=False, allow_blank=True, allow_null=True)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if "assignee" in attrs:
            attrs["assignee"] = attrs["assignee"] or ""
        return attrs


class ContactInputSerializer(StrictSerializer):
    conversation_id = OptionalText(max_length=64)
    first_name = OptionalText(max_length=200)
    last_name = OptionalText(max_length=200)
    email = OptionalEmail(max_length=254)
    phone = OptionalText(max_length=40)
    content = OptionalText(max_length=5000)
    uri = OptionalText(max_length=2048)


# --- output -----------------------------------------------------------------------------------
class VisitorSerializer(serializers.Serializer):
    name = serializers.CharField(allow_null=True)
    email = serializers.CharField(allow_null=True)
    phone = serializers.CharField(allow_null=True)


class ConversationSerializer(serializers.ModelSerializer):
    visitor = serializers.SerializerMethodField()

    class Meta:
        model = Conversation
        fields = [
            "id",
            "number",
            "channel",
            "status",
            "visitor",
            "page_url",
            "source",
            "session",
            "needs_human_at",
            "handoff_reason",
            "created_at",
            "closed_at",
        ]

    @extend_schema_field(VisitorSerializer)
    def get_visitor(self, conversation: Conversation) -> dict:
        return event_data.visitor(conversation)


class MessageSerializer(serializers.ModelSerializer):
    conversation_id = serializers.CharField()

    class Meta:
        model = Message
        fields = ["id", "conversation_id", "sender_type", "body", "created_at"]


class TicketSerializer(serializers.ModelSerializer):
    conversation_id = serializers.CharField(allow_null=True)

    class Meta:
        model = Ticket
        fields = ["id", "conversation_id", "subject", "status", "priority", "assignee", "created_at", "updated_at"]


CONTACT_FIELDS = ["id", "conversation_id", "first_name", "last_name", "email", "phone", "content", "uri", "created_at"]


class LeadSerializer(serializers.ModelSerializer):
    conversation_id = serializers.CharField(allow_null=True)

    class Meta:
        model = Lead
        fields = CONTACT_FIELDS


class AppointmentSerializer(LeadSerializer):
    class Meta:
        model = Appointment
        fields = CONTACT_FIELDS


# A response's fields that a request cannot set are refused as read-only (core.api.serializers).
ConversationInputSerializer.read_only_names = ConversationSerializer.Meta.fields
MessageInputSerializer.read_only_names = MessageSerializer.Meta.fields
TicketInputSerializer.read_only_names = TicketPatchSerializer.read_only_names = TicketSerializer.Meta.fields
ContactInputSerializer.read_only_names = CONTACT_FIELDS


# --- views ------------------------------------------------------------------------------------
def conversation_of(request, conversation_id: str) -> Conversation:
    return get_object_or_404(Conversation.objects.select_related("site"), pk=conversation_id, site=site_of(request))


class ConversationListView(APIView):
    @extend_schema(
        request=ConversationInputSerializer,
        responses={201: ConversationSerializer},
        summary="Start a conversation (publishes conversation.created)",
    )
    def post(self, request):
        data = valid_input(ConversationInputSerializer, request)
        visitor = data.get("visitor", {})
        conversation = services.conversation_create(
            site=site_of(request),
            channel=data["channel"],
            visitor_name=visitor.get("name", ""),
            visitor_email=visitor.get("email", ""),
            visitor_phone=visitor.get("phone", ""),
            page_url=data["page_url"],
            source=data.get("source"),
        )
        return Response(ConversationSerializer(conversation).data, status=status.HTTP_201_CREATED)


class ConversationMessageListView(APIView):
    @extend_schema(
        request=MessageInputSerializer,
        responses={201: MessageSerializer},
        summary="Add a message to an open conversation (publishes message.created)",
    )
    def post(self, request, conversation_id):
        conversation = conversation_of(request, conversation_id)
        message = services.message_create(conversation=conversation, **valid_input(MessageInputSerializer, request))
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class ConversationHandoffView(APIView):
    @extend_schema(
        request=HandoffInputSerializer,
        responses=ConversationSerializer,
        summary="Ask for a human (publishes conversation.needs_human)",
    )
    def post(self, request, conversation_id):
        conversation = conversation_of(request, conversation_id)
        conversation = services.conversation_handoff(conversation=conversation, **valid_input(HandoffInputSerializer, request))
        return Response(ConversationSerializer(conversation).data)


class ConversationCloseView(APIView):
    @extend_schema(
        request=None,
        responses=ConversationSerializer,
        summary="Close a conversation (publishes conversation.closed)",
        description="Closing a closed conversation changes nothing and publishes nothing.",
    )
    def post(self, request, conversation_id):
        conversation = conversation_of(request, conversation_id)
        no_input(request)
        conversation = services.conversation_close(conversation=conversation)
        return Response(ConversationSerializer(conversation).data)


class ConversationResumeView(APIView):
    @extend_schema(
        request=None,
        responses=ConversationSerializer,
        summary="Give an open conversation back to the AI (its session becomes active)",
    )
    def post(self, request, conversation_id):
        conversation = conversation_of(request, conversation_id)
        no_input(request)
        conversation = services.conversation_resume(conversation=conversation)
        return Response(ConversationSerializer(conversation).data)


class TicketListView(APIView):
    @extend_schema(
        request=TicketInputSerializer, responses={201: TicketSerializer}, summary="File a ticket (publishes ticket.created)"
    )
    def post(self, request):
        ticket = services.ticket_create(site=site_of(request), **valid_input(TicketInputSerializer, request))
        return Response(TicketSerializer(ticket).data, status=status.HTTP_201_CREATED)


class TicketDetailView(APIView):
    @extend_schema(
        request=TicketPatchSerializer,
        responses=TicketSerializer,
        summary="Change a ticket (publishes ticket.updated with what changed)",
        description="Values equal to the ticket's current ones change nothing and publish nothing.",
    )
    def patch(self, request, ticket_id):
        ticket = get_object_or_404(Ticket.objects.select_related("site"), pk=ticket_id, site=site_of(request))
        ticket = services.ticket_update(ticket=ticket, **valid_input(TicketPatchSerializer, request))
        return Response(TicketSerializer(ticket).data)


class ContactRecordCreateView(APIView):
    """POST of a lead or an appointment: the same input, a different record and event."""

    output: type[serializers.ModelSerializer]

    def create(self, **fields):
        raise NotImplementedError

    def post(self, request):
        record = self.create(site=site_of(request), **valid_input(ContactInputSerializer, request))
        return Response(self.output(record).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    post=extend_schema(
        request=ContactInputSerializer, responses={201: LeadSerializer}, summary="Record a lead (publishes lead.submit)"
    )
)
class LeadListView(ContactRecordCreateView):
    output = LeadSerializer

    def create(self, **fields):
        return services.lead_create(**fields)


@extend_schema_view(
    post=extend_schema(
        request=ContactInputSerializer,
        responses={201: AppointmentSerializer},
        summary="Book an appointment (publishes appointment.created)",
    )
)
class AppointmentListView(ContactRecordCreateView):
    output = AppointmentSerializer

    def create(self, **fields):
        return services.appointment_create(**fields)
