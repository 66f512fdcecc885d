"""The webhook channel's uploads (seed 003, v2), on the channel's own JWT authentication:

    POST {hook}/uploads                                   one request: multipart `file` (+ fileType)
    POST {hook}/uploads/init                              {fileName, fileType?, contentType?, size?}
    PUT|POST {hook}/uploads/{fileId}/parts/{n}            the part's bytes as the body (at most 1 MB)
    POST {hook}/uploads/{fileId}/finish                   {totalParts}
    GET  /chatbot/files/{signed link}                     the file, for whoever holds the link

where {hook} is `/chatbot/hooks/{botId}` or `/chatbot/hooks/{botId}/hookInstance/{webHookId}`.
"""

from django.conf import settings
from django.http import FileResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from inbound.connectors.webhook_channel import services as webhook_services
from inbound.connectors.webhook_channel import uploads
from inbound.connectors.webhook_channel.views import RequestRefused, _allowed, _body, _claims, _respond
from inbound.models import ApiVersion, Integration
from inbound.request_body import BodyRefused, request_body


def _instance(request, bot_id: str, instance_id: str | None) -> Integration:
    integration = webhook_services.instance_find(bot_id=bot_id, instance_id=instance_id)
    _claims(request, integration)
    if integration.api_version != ApiVersion.V2:
        raise RequestRefused(400, "not_supported", "uploading files is a v2 feature; this channel instance speaks v1")
    return integration


def _described(upload, status: int = 200) -> tuple[int, dict]:
    body = {"fileId": upload.id, "fileName": upload.name, "fileType": upload.file_type, "size": upload.size}
    return status, {**body, "contentType": upload.content_type, "status": upload.status}


def _refusing(handler):
    def run(request, **kwargs):
        try:
            return handler(request, **kwargs)
        except uploads.UploadRefused as exc:
            raise RequestRefused(exc.status, exc.error, str(exc)) from None

    return run


@_refusing
def _upload(request, bot_id: str, instance_id: str | None = None):
    _allowed(request, ("POST",))
    integration = _instance(request, bot_id, instance_id)
    sent = request.FILES.get("file")
    if sent is None:
        raise RequestRefused(
            400, "invalid_file", "send the file as multipart/form-data in the field `file` (curl -F file=@name.png)"
        )
    if sent.size > settings.AGENTBOT_UPLOAD_MAX_BYTES:
        raise RequestRefused(
            413, "file_too_large", f"the file is {sent.size} bytes; the limit is {settings.AGENTBOT_UPLOAD_MAX_BYTES}"
        )
    upload = uploads.upload_create(
        integration=integration,
        name=request.POST.get("fileName") or sent.name,
        content=sent.read(),
        content_type=sent.content_type,
        file_type=request.POST.get("fileType"),
    )
    return _described(upload, 201)


@_refusing
def _init(request, bot_id: str, instance_id: str | None = None):
    _allowed(request, ("POST",))
    integration = _instance(request, bot_id, instance_id)
    body = _body(request)
    upload = uploads.upload_init(
        integration=integration,
        name=body.get("fileName"),
        content_type=body.get("contentType"),
        file_type=body.get("fileType"),
        size=body.get("size"),
    )
    return _described(upload, 201)


@_refusing
def _part(request, bot_id: str, file_id: str, number: int, instance_id: str | None = None):
    _allowed(request, ("PUT", "POST"))
    integration = _instance(request, bot_id, instance_id)
    upload = uploads.upload_find(integration=integration, file_id=file_id)
    try:
        content = request_body(request)
    except BodyRefused as exc:
        raise RequestRefused(exc.status, exc.error, f"{exc}; send a large file in more parts") from None
    received = uploads.upload_part(upload=upload, number=number, content=content)
    return 200, {"fileId": upload.id, "part": number, "received": received}


@_refusing
def _finish(request, bot_id: str, file_id: str, instance_id: str | None = None):
    _allowed(request, ("POST",))
    integration = _instance(request, bot_id, instance_id)
    upload = uploads.upload_find(integration=integration, file_id=file_id)
    return _described(uploads.upload_finish(upload=upload, total_parts=_body(request).get("totalParts")))


upload = _respond(_upload)
upload_init = _respond(_init)
upload_part = _respond(_part)
upload_finish = _respond(_finish)


@csrf_exempt
def file_download(request, token: str):
    if request.method not in ("GET", "HEAD"):
        return JsonResponse({"error": "method_not_allowed", "message": "GET the file"}, status=405)
    upload = uploads.file_by_link(token)
    if upload is None:
        return JsonResponse(
            {"error": "link_invalid", "message": "this file link is not valid or has expired; a newer event carries a new one"},
            status=403,
        )
    response = FileResponse(
        uploads.storage().open(upload.storage_name), as_attachment=True, filename=upload.name, content_type=upload.content_type
    )
    # A caller's file is never run as a page of this site.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response
