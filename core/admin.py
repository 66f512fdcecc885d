from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, ngettext

from core.models import ApiKey, Site
from core.services import api_key_create, api_key_forget

admin.site.site_header = "Agentbot Webhooks"
admin.site.site_title = "Agentbot Webhooks admin"
admin.site.index_title = "Operations"
# The wide tables (webhook health, delivery log) need the width more than a second menu.
admin.site.enable_nav_sidebar = False


def secrets_show_once(request, *, title: str, secrets: list[tuple[str, str]], then: str = "") -> None:
    """Show newly made secrets the one time they can be read: one admin warning, `title` (what and
    whose), each secret as `label <code>value</code>` (a lone secret needs no label), then `then`
    (already escaped, e.g. from format_html: where the secret is used). The page is the only
    place they appear: they are stored hashed or encrypted, and never logged."""
    shown = format_html_join(", ", "{}<code>{}</code>", ((f"{label} " if label else "", value) for label, value in secrets))
    warning = ngettext("copy it now; it will not be shown again.", "copy them now; they will not be shown again.", len(secrets))
    messages.warning(request, format_html("{}: {} — {}{}", title, shown, warning, format_html(" {}", then) if then else ""))


class ObjectActionsMixin:
    """Buttons on an object's page that run one of the admin's actions on that object alone.

    The action is the same function the changelist runs (it calls the service and says what
    happened); an action that answers with a page (a form asking for more) is shown as is,
    otherwise the browser goes back to the object's page.
    """

    change_form_template = "admin/console/change_form.html"
    change_list_template = "admin/console/change_list.html"

    def object_actions(self, request, obj) -> list[str]:
        """Names of the actions offered as buttons on `obj`'s page."""
        return []

    def get_urls(self):
        opts = self.model._meta
        view = self.admin_site.admin_view(self.object_action_view)
        name = f"{opts.app_label}_{opts.model_name}_act"
        return [path("<path:object_id>/act/<str:action>/", view, name=name)] + super().get_urls()

    def object_action_view(self, request, object_id, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, unquote(object_id))
        actions = self.get_actions(request)
        if obj is None or action not in actions or action not in self.object_actions(request, obj):
            raise Http404("no such object or action")
        func = actions[action][0]
        response = func(self, request, self.get_queryset(request).filter(pk=obj.pk))
        if response is not None:
            return response
        opts = self.model._meta
        if request.GET.get("from") == "list":  # a row's control on the list: back to it, filters kept
            back = request.META.get("HTTP_REFERER", "")
            safe = url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure())
            return HttpResponseRedirect(back if safe else reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(obj.pk)]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            opts = self.model._meta
            actions = self.get_actions(request)
            context["object_actions"] = [
                {
                    "label": actions[name][2],
                    "url": reverse(f"admin:{opts.app_label}_{opts.model_name}_act", args=[quote(obj.pk), name]),
                }
                for name in self.object_actions(request, obj)
                if name in actions
            ]
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "created_at"]
    search_fields = ["id", "name"]
    actions = ["new_api_key"]

    @admin.action(description="Create an API key")
    def new_api_key(self, request, queryset):
        for site in queryset:
            _, plain = api_key_create(site=site, name=f"admin:{request.user.get_username()}")
            secrets_show_once(request, title=gettext("API key for %(site)s") % {"site": site.id}, secrets=[("", plain)])


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "site", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["site"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    fields = ["site", "name", "prefix", "created_at", "last_used_at", "revoked_at"]

    def has_add_permission(self, request):
        # Keys are made with the site action or `create_api_key`, which show the key once.
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        api_key_forget(key_hash=obj.key_hash)  # a revocation takes effect in this process at once
