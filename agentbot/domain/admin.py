"""Read-only admin for the agent's records: they change through the API (which publishes events),
so the admin shows them and never edits them behind the event stream's back."""

from django.contrib import admin

from agentbot.domain.models import Appointment, Conversation, Lead, Message, Ticket


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["created_at", "sender_type", "body"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    list_display = ["id", "site", "number", "channel", "status", "visitor_name", "visitor_email", "needs_human_at", "created_at"]
    list_filter = ["status", "channel", "site"]
    search_fields = ["id", "visitor_name", "visitor_email", "visitor_phone"]
    inlines = [MessageInline]


@admin.register(Ticket)
class TicketAdmin(ReadOnlyAdmin):
    list_display = ["id", "site", "subject", "status", "priority", "assignee", "updated_at"]
    list_filter = ["status", "priority", "site"]
    search_fields = ["id", "subject", "assignee"]


@admin.register(Lead, Appointment)
class ContactRecordAdmin(ReadOnlyAdmin):
    list_display = ["id", "site", "first_name", "last_name", "email", "phone", "created_at"]
    list_filter = ["site"]
    search_fields = ["id", "first_name", "last_name", "email", "phone"]
