"""The webchat's part of the integration admin form: the origins whose pages may open the widget."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from inbound.models import ConnectorType
from inbound.origins import origins_clean


class WebchatFields(forms.Form):
    """Mixed into the admin's IntegrationForm (inbound/admin.py), a ModelForm of Integration."""

    FIELDSET = (_("Webchat"), ["allowed_origins"])

    allowed_origins = forms.CharField(
        label=_("Allowed origins"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "https://shop.example"}),
        help_text=_(
            "Webchat: the origins (scheme://host[:port]) whose pages may open the widget, one per line. "
            "Empty: only this service's own pages, such as the demo page."
        ),
    )

    def clean_allowed_origins(self):
        # The service's check, here so that a refused origin is a form error.
        try:
            origins = origins_clean(self.cleaned_data.get("allowed_origins", ""))
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["allowed_origins"]) from exc
        # (an unsaved integration has its pk already: ids are made by the model's default)
        adding = self.instance._state.adding
        connector = self.cleaned_data.get("connector_type") if adding else self.instance.connector_type
        if origins and connector != ConnectorType.WEBCHAT:
            raise ValidationError(_("Only a webchat integration has allowed origins; leave this empty."))
        return origins
