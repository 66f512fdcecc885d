from django.contrib import admin, messages
from django.utils.html import format_html

from agentbot.models import ApiKey, Site
from agentbot.services import api_key_create


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "created_at"]
    search_fields = ["id", "name"]
    actions = ["new_api_key"]

    @admin.action(description="Create an API key")
    def new_api_key(self, request, queryset):
        for site in queryset:
            _, plain = api_key_create(site=site, name=f"admin:{request.user.get_username()}")
            messages.warning(
                request, format_html("API key for {}: <code>{}</code> — copy it now; it will not be shown again.", site.id, plain)
            )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "site", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["site"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    fields = ["site", "name", "prefix", "created_at", "last_used_at", "revoked_at"]

    def has_add_permission(self, request):
        # Keys are made with the site action or `create_api_key`, which show the key once.
        return False


import agentbot.domain.admin  # noqa: E402,F401  (registers the domain's read-only admin)
