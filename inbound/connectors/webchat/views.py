"""`GET /webchat/demo`: a page that embeds the webchat widget, as a customer's site would."""

from django.http import JsonResponse
from django.shortcuts import render

from core import ids
from core.models import DEMO_SITE
from inbound.connectors.webchat import services as webchat
from inbound.models import ConnectorType, Integration


def webchat_demo(request):
    """The widget of `?integration=intg_…`, or of the demo site's newest active webchat integration
    (the one `make run` makes)."""
    wanted = request.GET.get("integration", "")
    found = Integration.objects.filter(connector_type=ConnectorType.WEBCHAT, active=True)
    if not wanted:
        integration = found.filter(site_id=DEMO_SITE).first()
    else:  # an id outside the grammar (core/ids.py) names nothing: no query
        integration = found.filter(pk=wanted).first() if ids.is_id(wanted, "intg") else None
    if integration is None:
        what = f"no active webchat integration {wanted}" if wanted else f"no active webchat integration on {DEMO_SITE}"
        return JsonResponse(
            {"error": "not_found", "message": f"there is {what}: make one in the admin, or start the service with `make run`"},
            status=404,
        )
    base_url = request.build_absolute_uri("/").rstrip("/")
    context = {
        "integration": integration,
        "snippet": webchat.embed_snippet(integration=integration, base_url=base_url),
        "widget_url": webchat.widget_url(base_url),
    }
    return render(request, "webchat/demo.html", context)
