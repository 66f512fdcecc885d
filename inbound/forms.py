"""Digital forms the agent asks a visitor to fill in (seed 003's "Handle Digital Forms"): the lead
form (name, email, phone, with the consent text). The agent asks for it when the knowledge base's
answer holds the marker [[lead_form]], or the model answers LEAD_FORM (a visitor who asks to be
contacted); the channel sends the form's definition, the visitor answers with `formData`, and valid
data becomes a lead (`lead.submit`) while invalid data gets the form back with each field's error."""

import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

LEAD_FORM = "lead_form"
MARKER = "[[lead_form]]"
MODEL_REPLY = "LEAD_FORM"
ASK_TEXT = "Please leave your contact details and we will get back to you."
THANKS_TEXT = "Thank you, {name}. We have your details and will contact you soon."
FIX_TEXT = "Some details need another look; please check the form."
PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{5,30}$")


def consent_text(site_name: str) -> str:
    return (
        f"I agree that {site_name or 'this company'} may contact me about my request using the details above, "
        "and keep them for that purpose."
    )


def lead_form_definition(*, site_name: str, errors: dict | None = None, values: dict | None = None) -> dict:
    """The lead form as the channel sends it (the value of a `template` message); `errors`: each
    field's problem when the visitor's answer was refused, with what they sent in `values`."""
    consent = consent_text(site_name)
    form = {
        "template_type": "form",
        "formId": LEAD_FORM,
        "formName": "Lead form",
        "heading": "Leave your contact details",
        "fields": [
            {"key": "name", "label": "Name", "type": "text", "required": True, "maxLength": 200},
            {"key": "email", "label": "Email", "type": "email", "required": True, "maxLength": 254},
            {"key": "phone", "label": "Phone", "type": "phone", "required": False, "maxLength": 40},
            {"key": "consent", "label": consent, "type": "checkbox", "required": True},
        ],
        "consentText": consent,
        "submit": {"label": "Send", "messageType": "formData"},
    }
    if errors:
        form["errors"] = errors
        form["values"] = {k: v for k, v in (values or {}).items() if k in ("name", "email", "phone") and isinstance(v, str)}
    return form


def lead_form_clean(val: dict) -> tuple[dict, dict]:
    """(the lead's fields, {}) for a valid answer, ({}, each field's error) otherwise."""
    errors: dict[str, str] = {}
    name, email, phone = (val.get(key) if isinstance(val.get(key), str) else "" for key in ("name", "email", "phone"))
    name, email, phone = name.strip(), email.strip(), phone.strip()
    if not name:
        errors["name"] = "Please give your name."
    elif len(name) > 200:
        errors["name"] = "The name is at most 200 characters."
    if not email:
        errors["email"] = "Please give an email address."
    else:
        try:
            validate_email(email)
        except ValidationError:
            errors["email"] = "This is not an email address."
    if phone and not PHONE.match(phone):
        errors["phone"] = "This is not a phone number (digits, and + ( ) - and spaces)."
    if val.get("consent") not in (True, "true", "on", "yes"):
        errors["consent"] = "Please agree to be contacted, or we cannot keep your details."
    if errors:
        return {}, errors
    first, _, last = name.partition(" ")
    return {"first_name": first, "last_name": last.strip(), "email": email, "phone": phone}, {}


def form_of(payload: dict) -> dict | None:
    """The formData a stored visitor message answers the lead form with, if it does."""
    val = (payload.get("metadata") or {}).get("formData")
    if isinstance(val, dict) and val.get("formId", LEAD_FORM) == LEAD_FORM:
        return val
    return None
