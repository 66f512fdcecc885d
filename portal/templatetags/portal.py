from django import template
from django.utils.translation import gettext_lazy as _

register = template.Library()

STATUS_LABELS = {"pending": _("pending"), "succeeded": _("succeeded"), "failed": _("failed")}


@register.filter
def status_label(status: str) -> str:
    """A delivery's status in the page's language."""
    return STATUS_LABELS.get(status, status)
