"""Files a webhook channel caller uploads (seed 003's "Upload Files to Platform", v2 only): in one
request, or in parts (init, parts, finish); then referenced by id in a message's attachments
(`{"fileName", "fileType", "fileId"}`). Kept through Django's storage API ("agentbot_uploads");
subscribers fetch one through a signed link that expires (AGENTBOT_UPLOAD_URL_TTL)."""

import mimetypes
import re
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from deliveries.retention import retention_cutoff
from inbound.models import Integration, UploadedFile
from inbound.parsed import PayloadError

FILE_TYPES = ("image", "audio", "video", "attachment")
MAX_PARTS = 1000
MAX_NAME = 255
URL_SALT = "agentbot.uploads.url"


class UploadRefused(Exception):
    """The upload is refused: the status (400, 404, 409, 413, 415) and a message a person can act on."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status, self.error = status, error


def storage():
    return storages["agentbot_uploads"]


def _name_clean(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise UploadRefused(400, "invalid_file", "fileName is required: the file's name, as fileName.png")
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if len(name) > MAX_NAME or not name.isprintable() or name in (".", ".."):
        raise UploadRefused(400, "invalid_file", f"fileName must be a printable name of at most {MAX_NAME} characters")
    return name


def _content_type(name: str, declared: str | None) -> str:
    content_type = (declared or "").split(";", 1)[0].strip().lower()
    if not content_type or content_type == "application/octet-stream":
        content_type = (mimetypes.guess_type(name)[0] or "application/octet-stream").lower()
    if content_type not in settings.AGENTBOT_UPLOAD_TYPES:
        raise UploadRefused(
            415,
            "unsupported_type",
            f"files of type {content_type} are not accepted; send one of {', '.join(settings.AGENTBOT_UPLOAD_TYPES)}",
        )
    return content_type


def _file_type(declared, content_type: str) -> str:
    if declared in (None, ""):
        major = content_type.split("/", 1)[0]
        return major if major in FILE_TYPES else "attachment"
    if declared not in FILE_TYPES:
        raise UploadRefused(400, "invalid_file", f"fileType must be one of {', '.join(FILE_TYPES)}")
    return declared


def _size_check(size: int) -> None:
    limit = settings.AGENTBOT_UPLOAD_MAX_BYTES
    if size > limit:
        raise UploadRefused(413, "file_too_large", f"the file is {size} bytes; the limit is {limit} bytes")


def _stored_name(upload: UploadedFile) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", upload.name)[-100:] or "file"
    return f"{upload.integration_id}/{upload.id}/{safe}"


def _part_name(upload: UploadedFile, number: int) -> str:
    return f"{upload.integration_id}/{upload.id}/parts/{number:05d}"


def upload_create(*, integration: Integration, name, content: bytes, content_type=None, file_type=None) -> UploadedFile:
    """A file in one request."""
    name = _name_clean(name)
    content_type = _content_type(name, content_type)
    if not content:
        raise UploadRefused(400, "invalid_file", "the file is empty")
    _size_check(len(content))
    upload = UploadedFile(
        integration=integration, name=name, content_type=content_type, file_type=_file_type(file_type, content_type)
    )
    upload.storage_name = storage().save(_stored_name(upload), ContentFile(content))
    upload.size, upload.status, upload.completed_at = len(content), UploadedFile.Status.COMPLETE, timezone.now()
    upload.save()
    return upload


def upload_init(*, integration: Integration, name, content_type=None, file_type=None, size=None) -> UploadedFile:
    """A chunked upload begins: the file's id, to which its parts are sent."""
    name = _name_clean(name)
    content_type = _content_type(name, content_type)
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise UploadRefused(400, "invalid_file", "size, when given, must be the file's size in bytes")
        _size_check(size)
    return UploadedFile.objects.create(
        integration=integration, name=name, content_type=content_type, file_type=_file_type(file_type, content_type)
    )


def upload_find(*, integration: Integration, file_id: str) -> UploadedFile:
    upload = UploadedFile.objects.filter(pk=file_id, integration=integration).first()
    if upload is None:
        raise UploadRefused(404, "not_found", f"this channel instance has no upload {file_id}")
    return upload


def upload_part(*, upload: UploadedFile, number: int, content: bytes) -> int:
    """Store part `number` (1, 2, …; sent again, it replaces the earlier one); the bytes so far."""
    if upload.status != UploadedFile.Status.UPLOADING:
        raise UploadRefused(409, "upload_finished", f"upload {upload.id} is finished; start another for another file")
    if not 1 <= number <= MAX_PARTS:
        raise UploadRefused(400, "invalid_part", f"parts are numbered 1 to {MAX_PARTS}")
    if not content:
        raise UploadRefused(400, "invalid_part", "the part is empty: send its bytes as the request body")
    files, name = storage(), _part_name(upload, number)
    with transaction.atomic():
        upload = UploadedFile.objects.select_for_update().get(pk=upload.pk)
        previous = files.size(name) if files.exists(name) else 0
        total = upload.size - previous + len(content)
        _size_check(total)
        if previous:
            files.delete(name)
        files.save(name, ContentFile(content))
        upload.size = total
        upload.save(update_fields=["size"])
    return total


def upload_finish(*, upload: UploadedFile, total_parts) -> UploadedFile:
    """Join parts 1..total_parts into the file; its parts are then deleted."""
    if not isinstance(total_parts, int) or isinstance(total_parts, bool) or not 1 <= total_parts <= MAX_PARTS:
        raise UploadRefused(400, "invalid_part", f"totalParts must be the number of parts sent, 1 to {MAX_PARTS}")
    files = storage()
    with transaction.atomic():
        upload = UploadedFile.objects.select_for_update().get(pk=upload.pk)
        if upload.status != UploadedFile.Status.UPLOADING:
            raise UploadRefused(409, "upload_finished", f"upload {upload.id} is finished already")
        names = [_part_name(upload, n) for n in range(1, total_parts + 1)]
        missing = [n for n, name in enumerate(names, 1) if not files.exists(name)]
        if missing:
            raise UploadRefused(409, "parts_missing", f"parts {', '.join(map(str, missing[:20]))} have not arrived")
        content = b"".join(files.open(name).read() for name in names)
        _size_check(len(content))
        upload.storage_name = files.save(_stored_name(upload), ContentFile(content))
        upload.size, upload.status, upload.completed_at = len(content), UploadedFile.Status.COMPLETE, timezone.now()
        upload.save()
        for name in names:
            files.delete(name)
    return upload


# --- in messages ---------------------------------------------------------------------------------
def file_url(upload: UploadedFile) -> str:
    """A link that fetches the file without credentials until AGENTBOT_UPLOAD_URL_TTL runs out."""
    token = signing.TimestampSigner(salt=URL_SALT).sign(upload.id)
    path = reverse("webhook-channel-file", kwargs={"token": token})
    return f"{settings.AGENTBOT_PUBLIC_URL}{path}"


def file_by_link(token: str) -> UploadedFile | None:
    """The file a signed link names; None when the link is forged or has expired."""
    try:
        file_id = signing.TimestampSigner(salt=URL_SALT).unsign(token, max_age=settings.AGENTBOT_UPLOAD_URL_TTL)
    except signing.BadSignature:
        return None
    return UploadedFile.objects.filter(pk=file_id, status=UploadedFile.Status.COMPLETE).first()


def attachments_resolve(*, integration: Integration, attachments: list[dict]) -> list[dict]:
    """A message's attachments with each `fileId` checked (uploaded to this channel instance, and
    complete) and described: name, type, content type, size and a signed link."""
    resolved = []
    for index, item in enumerate(attachments):
        file_id = item.get("fileId")
        if not file_id:
            resolved.append(item)
            continue
        upload = UploadedFile.objects.filter(
            pk=str(file_id), integration=integration, status=UploadedFile.Status.COMPLETE
        ).first()
        if upload is None:
            raise PayloadError(
                f"message.attachments[{index}].fileId {file_id!r} is not a file uploaded to this channel instance "
                "(upload it here first, and finish a chunked upload)"
            )
        resolved.append(
            {
                "fileId": upload.id,
                "fileName": upload.name,
                "fileType": upload.file_type,
                "contentType": upload.content_type,
                "size": upload.size,
                "url": file_url(upload),
            }
        )
    return resolved


# --- retention -------------------------------------------------------------------------------------
UNFINISHED_HOURS = 24


def uploads_purge_old(*, limit: int = 1000) -> int:
    """Delete files older than AGENTBOT_RETENTION_DAYS, and uploads left unfinished for a day,
    from the storage and the table (a batch at a time); how many were deleted."""
    now = timezone.now()
    old = UploadedFile.objects.filter(created_at__lt=retention_cutoff()) | UploadedFile.objects.filter(
        status=UploadedFile.Status.UPLOADING, created_at__lt=now - timedelta(hours=UNFINISHED_HOURS)
    )
    files, deleted = storage(), 0
    for upload in old.order_by("created_at")[:limit]:
        names = [upload.storage_name] if upload.storage_name else []
        parts = f"{upload.integration_id}/{upload.id}/parts"
        try:
            names += [f"{parts}/{name}" for name in files.listdir(parts)[1]]
        except (FileNotFoundError, NotImplementedError):
            pass
        for name in names:
            files.delete(name)
        upload.delete()
        deleted += 1
    return deleted
