"""Read-only admin for the agent's records: they change through the API (which publishes events),
so the admin shows them and never edits them behind the event stream's back."""

import json

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from core.admin import ObjectActionsMixin
from core.vocabulary import ConversationStatus, SessionState
from domain import services
from domain.models import Appointment, Conversation, Lead, Message, Ticket


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
class ConversationAdmin(ObjectActionsMixin, ReadOnlyAdmin):
    list_display = [
        "id",
        "site",
        "number",
        "channel",
        "status",
        "session",
        "integration",
        "visitor_name",
        "visitor_email",
        "needs_human_at",
        "created_at",
    ]
    list_filter = ["status", "session", "channel", "site"]
    list_select_related = ["site", "integration"]
    search_fields = ["id", "visitor_name", "visitor_email", "visitor_phone", "=external_id"]
    exclude = ["context"]
    readonly_fields = ["shared_context"]
    inlines = [MessageInline]
    actions = ["give_back_to_ai"]

    def object_actions(self, request, obj):
        return ["give_back_to_ai"] if obj.is_open and obj.session == SessionState.PAUSED else []

    def has_resume_permission(self, request):
        # The page stays read-only; handing the dialog back goes through the service.
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.display(description=_("shared conversation context"))
    def shared_context(self, obj):
        return format_html('<pre class="console-pre">{}</pre>', json.dumps(obj.context, indent=2, ensure_ascii=False))

    @admin.action(description=_("Give back to the AI"), permissions=["resume"])
    def give_back_to_ai(self, request, queryset):
        resumed = 0
        for conversation in queryset.filter(status=ConversationStatus.OPEN, session=SessionState.PAUSED):
            try:
                services.conversation_resume(conversation=conversation)
                resumed += 1
            except services.ConversationClosed:  # closed meanwhile
                pass
        skipped = len(queryset) - resumed
        note = ngettext(
            "%(count)d conversation given back to the AI: it answers the visitor again.",
            "%(count)d conversations given back to the AI: it answers the visitors again.",
            resumed,
        ) % {"count": resumed}
        if skipped:
            left = gettext("%(count)d left as they were: only open conversations a human has (paused) can be given back.")
            note += " " + left % {"count": skipped}
        self.message_user(request, note, messages.SUCCESS if resumed else messages.WARNING)


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
