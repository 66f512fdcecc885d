"""The operator's side of the portal: who belongs to which site, and where a site's portal may be framed."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from portal.models import PortalSettings, SiteMembership
from portal.services import portal_origin_validate


@admin.register(SiteMembership)
class SiteMembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "site", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email", "site__id", "site__name"]
    autocomplete_fields = ["site"]
    raw_id_fields = ["user"]


class PortalSettingsForm(forms.ModelForm):
    class Meta:
        model = PortalSettings
        fields = ["site", "allowed_origins"]

    def clean_allowed_origins(self):
        origins = self.cleaned_data["allowed_origins"] or []
        if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
            raise ValidationError('a list of origins, as ["https://app.example.com"]')
        try:
            return list(dict.fromkeys(portal_origin_validate(o) for o in origins))
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["allowed_origins"]) from exc


@admin.register(PortalSettings)
class PortalSettingsAdmin(admin.ModelAdmin):
    form = PortalSettingsForm
    list_display = ["site", "allowed_origins"]
    search_fields = ["site__id", "site__name"]
    autocomplete_fields = ["site"]
