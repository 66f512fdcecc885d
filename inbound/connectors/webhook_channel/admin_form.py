"""The webhook channel's part of the integration admin form: an instance's settings, checked by
the service's own rules (instance_settings.py) so that a refused one is a form error."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from inbound.connectors.webhook_channel.instance_settings import CHANNEL_FIELDS, channel_settings
from inbound.models import ApiVersion, ChannelMode, ConnectorType, JwtAlgorithm


class WebhookChannelFields(forms.Form):
    """Mixed into the admin's IntegrationForm (inbound/admin.py), a ModelForm of Integration."""

    TITLE = _("Webhook channel")

    @staticmethod
    def fieldset(obj) -> tuple:
        # The client id is made with the instance: shown (read-only) once there is one.
        # So is the JWE public key a client may encrypt its token to.
        return WebhookChannelFields.TITLE, ([] if obj is None else ["client_id", "jwe_public_key"]) + list(CHANNEL_FIELDS)

    post_url = forms.URLField(
        label="POST_URL",
        required=False,
        max_length=2048,
        assume_scheme="https",
        help_text=_("Webhook channel, asynchronous mode: where each of the agent's messages is posted."),
    )
    # Kept in the integration's `settings` (inbound/models.py), so declared here, not by the model.
    api_version = forms.ChoiceField(label=capfirst(_("API version")), choices=ApiVersion.choices, required=False)
    mode = forms.ChoiceField(label=capfirst(_("mode")), choices=ChannelMode.choices, required=False)
    polling = forms.BooleanField(
        label=capfirst(_("polling")),
        required=False,
        help_text=_("Webhook channel v2, synchronous mode: answer with a pollId when the agent is not done."),
    )
    jwt_algorithm = forms.ChoiceField(label=capfirst(_("JWT signing algorithm")), choices=JwtAlgorithm.choices, required=False)
    public_key = forms.CharField(
        label=capfirst(_("public key")),
        required=False,
        widget=forms.Textarea,
        help_text=_("RS256/RS512: the client's public key, PEM."),
    )

    allow_anonymous = forms.BooleanField(
        label=_("Allow anonymous users to chat"),
        required=False,
        help_text=_("A request without a user identity (from.id) gets an anonymous one instead of being refused."),
    )
    auto_register = forms.BooleanField(
        label=_("Auto register new users"),
        required=False,
        initial=True,
        help_text=_("Off: a user identity this site has never seen is refused (Invalid access token)."),
    )

    def channel_changes(self) -> dict:
        # A new integration already has its generated id: `_state.adding` is what tells it apart.
        if self.instance._state.adding:
            found = {name: self.cleaned_data[name] for name in CHANNEL_FIELDS if name in self.cleaned_data}
            return {name: value for name, value in found.items() if value != ""}
        return {name: self.cleaned_data[name] for name in CHANNEL_FIELDS if name in self.changed_data}

    def clean(self):
        # The service's checks of the webhook channel's settings, here so that they are form errors.
        cleaned = super().clean()
        adding = self.instance._state.adding
        connector = cleaned.get("connector_type") if adding else self.instance.connector_type
        if connector == ConnectorType.WEBHOOK and not self.errors:
            try:
                cleaned.update(channel_settings(changes=self.channel_changes(), current=None if adding else self.instance))
            except ValidationError as exc:
                self.add_error(None, exc)
        return cleaned
