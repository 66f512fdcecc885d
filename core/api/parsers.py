"""The REST API's one parser: JSON read through core/jsonlimits.py, at most
DATA_UPLOAD_MAX_MEMORY_SIZE bytes read (a longer body is a 413 without being read to its end)."""

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser

from core import jsonlimits


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


class JSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        params = dict(part.strip().lower().split("=", 1) for part in (media_type or "").split(";")[1:] if "=" in part)
        if params.get("charset", "utf-8").strip('"') not in ("utf-8", "utf8"):
            raise exceptions.ParseError("JSON must be UTF-8: send Content-Type: application/json (charset utf-8 or none)")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit // 1024} KB")
        try:
            return jsonlimits.loads(raw)
        except jsonlimits.JsonRefused as exc:
            raise exceptions.ParseError(str(exc)) from None
