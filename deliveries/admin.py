from django.contrib import admin

from deliveries import services
from deliveries.models import Attempt, Delivery, Event


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = ["number", "at", "status_code", "duration_ms", "error", "response_body"]
    readonly_fields = fields
    ordering = ["number"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "event_type", "webhook", "status", "last_status_code", "attempt_count", "next_attempt_at", "created_at"]
    list_filter = ["status", "webhook__format"]
    search_fields = ["id", "event__id", "webhook__id", "webhook__url"]
    list_select_related = ["event", "webhook"]
    inlines = [AttemptInline]
    actions = ["retry"]
    readonly_fields = [
        "id", "event", "webhook", "status", "attempt_count", "next_attempt_at", "last_attempt_at",
        "last_status_code", "last_error", "leased_until", "created_at",
    ]
    fields = readonly_fields

    @admin.display(description="event", ordering="event__type")
    def event_type(self, obj):
        return obj.event.type

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Retry now")
    def retry(self, request, queryset):
        done, busy = 0, 0
        for delivery in queryset:
            try:
                services.delivery_retry(delivery=delivery)
                done += 1
            except services.DeliveryBusy:
                busy += 1
        note = f"; {busy} were being sent already" if busy else ""
        self.message_user(request, f"Queued {done} deliveries to be sent again now{note}.")


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "site", "created_at"]
    list_filter = ["type", "site"]
    search_fields = ["id", "idempotency_key"]
    readonly_fields = ["id", "site", "type", "data", "idempotency_key", "created_at"]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
