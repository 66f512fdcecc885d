"""Chat2Desk's part of the integration admin form: its API URL and its write-only API token."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from subscriptions.services import webhook_validate_url


class Chat2DeskFields(forms.Form):
    """Mixed into the admin's IntegrationForm (inbound/admin.py)."""

    FIELDSET = (_("Chat2Desk API"), ["api_url", "new_api_token"])

    api_url = forms.URLField(
        label=_("API URL"),
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text=_("Chat2Desk's API for your account's instance (global or Europe), as in https://api.chat2desk.com"),
    )
    # Write-only, so not the model's field: never rendered back, not even after a form error.
    new_api_token = forms.CharField(
        label=_("API token"),
        required=False,
        max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Chat2Desk's API token, stored encrypted and never shown. Leave it blank to keep the current one."),
    )

    def clean_api_url(self):
        # The same URL policy the service applies, here so that a refused URL is a form error.
        api_url = self.cleaned_data.get("api_url", "")
        if not api_url:
            return ""
        try:
            return webhook_validate_url(api_url).rstrip("/")
        except ValidationError as exc:
            raise ValidationError(exc.message_dict.get("url", exc.messages)) from exc
