"""POST /api/v1/portal-links: a host app asks, with its site's API key, for a link that opens the
site's portal (in a page or an iframe)."""

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.auth import site_of
from core.api.fields import StrictBooleanField, StrictCharField
from core.api.serializers import StrictSerializer
from portal import services


class PortalLinkInputSerializer(StrictSerializer):
    expires_in = serializers.IntegerField(
        required=False,
        default=services.LINK_DEFAULT_SECONDS,
        min_value=services.LINK_MIN_SECONDS,
        max_value=services.LINK_MAX_SECONDS,
        help_text="seconds the link may be opened in (once); default 3600",
    )
    read_only = StrictBooleanField(required=False, default=False, help_text="the portal opened shows, and changes nothing")
    read_only_names = ["url", "expires_at"]


def portal_base_url(request) -> str:
    return settings.AGENTBOT_PUBLIC_URL or request.build_absolute_uri("/").rstrip("/")


class PortalLinkCreateView(APIView):
    @extend_schema(
        request=PortalLinkInputSerializer,
        responses={
            201: inline_serializer(
                "PortalLink",
                {
                    "url": serializers.CharField(help_text="opens the site's portal once; the token is in its #fragment"),
                    "expires_at": serializers.DateTimeField(),
                },
            )
        },
        summary="A single-use link to the site's portal",
        description="The URL opens the site's portal once (in a page or an iframe), within `expires_in` seconds; "
        "`read_only` opens one that changes nothing. See docs/portal.md.",
        examples=[
            OpenApiExample("A five-minute link", value={"expires_in": 300, "read_only": False}, request_only=True),
            OpenApiExample(
                "The link",
                value={
                    "url": "https://agent.example.com/portal/enter#Wm9x…:Ab3k…",
                    "expires_at": "2026-12-07T10:05:00Z",
                },
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request):
        data = PortalLinkInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        link, token = services.portal_link_create(site=site_of(request), **data.validated_data)
        # The token rides in the #fragment: browsers never send it to a server, so it reaches no
        # access log and no Referer; the landing page's script posts it once.
        url = f"{portal_base_url(request)}{reverse('portal:enter')}#{token}"
        return Response(
            {"url": url, "expires_at": serializers.DateTimeField().to_representation(link.expires_at)},
            status=status.HTTP_201_CREATED,
        )


class PortalSettingsSerializer(StrictSerializer):
    allowed_origins = serializers.ListField(
        child=StrictCharField(max_length=300),
        max_length=20,
        help_text='origins that may show the portal in an iframe, as ["https://app.example.com"]; empty: none',
    )
    read_only_names = []


class PortalSettingsView(APIView):
    @extend_schema(
        responses=PortalSettingsSerializer,
        summary="The site's portal settings",
        examples=[
            OpenApiExample("One host app", value={"allowed_origins": ["https://app.example.com"]}, response_only=True),
        ],
    )
    def get(self, request):
        origins = services.portal_frame_origins(site=site_of(request))
        return Response({"allowed_origins": list(origins)})

    @extend_schema(
        request=PortalSettingsSerializer,
        responses=PortalSettingsSerializer,
        summary="Set the origins that may frame the site's portal",
        examples=[
            OpenApiExample("One host app", value={"allowed_origins": ["https://app.example.com"]}),
        ],
    )
    def put(self, request):
        data = PortalSettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        saved = services.portal_settings_update(site=site_of(request), **data.validated_data)
        return Response({"allowed_origins": saved.allowed_origins})
