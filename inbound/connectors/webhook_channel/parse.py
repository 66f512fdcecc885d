"""What the webhook channel's callers post, v1 and v2.

A message becomes the connector-neutral payload of `_accept_message` (inbound/services.py): the visitor is
`from.id`, user-level and session-level tags go to the conversation's context, message-level tags,
attachments and structured values (template, formData) to the visitor's Message.metadata. The
v2 events ON_CONNECT and SESSION_CLOSURE are `status` events applied in the request (see
services.py). docs/inbound/webhook-channel.md shows every shape.
"""

import json

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from core.text import text_is_storable
from inbound.models import ApiVersion
from inbound.parsed import Parsed, PayloadError

# The conversation's channel: Agentbot's catalogue has no "webhook" channel, so "other".
CHANNEL = "other"
MAX_TEXT = 20_000
MAX_ID = 200
MAX_TAGS = 50
MAX_ATTACHMENTS = 20
MAX_STRUCTURED = 16_384  # characters of a template's or formData's val, as compact JSON
EVENT_ON_CONNECT = "ON_CONNECT"
EVENT_SESSION_CLOSURE = "SESSION_CLOSURE"
EVENTS = (EVENT_ON_CONNECT, EVENT_SESSION_CLOSURE)
V2_TYPES = ("text", "template", "event", "formData")
TAG_LISTS = ("userLevelTags", "sessionLevelTags", "messageLevelTags")


# --- what callers post -------------------------------------------------------------------------
def _storable(value, path: str) -> None:
    """PostgreSQL's jsonb holds no NUL and no unpaired surrogate, in keys or in strings."""
    if isinstance(value, str):
        if not text_is_storable(value):
            raise PayloadError(f"{path} must not contain NUL or unpaired surrogate characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key, f"{path} (a key)")
            _storable(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _storable(item, f"{path}[{index}]")


def _object(body: dict, name: str, path: str, *, required: bool = False) -> dict:
    value = body.get(name)
    if value is None:
        if required:
            raise PayloadError(f"{path} is required: an object")
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{path} must be an object")
    return value


def _text(body: dict, name: str, path: str, *, limit: int, required: bool = False) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise PayloadError(f"{path} is required: a non-empty string")
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{path} must be a string")
    if len(value) > limit:
        raise PayloadError(f"{path} is {len(value)} characters; the limit is {limit}")
    _storable(value, path)
    return value


def _flag(body: dict, name: str, path: str) -> bool:
    """A boolean; the document's `mergeIdentity` also comes as the strings "true" and "false"."""
    value = body.get(name)
    if value is None:
        return False
    if value in ("true", "false"):
        return value == "true"
    if not isinstance(value, bool):
        raise PayloadError(f"{path} must be true or false")
    return value


def has_user_id(body: dict) -> bool:
    """Whether the caller says who the user is (`from.id`); an anonymous caller does not."""
    sender = body.get("from")
    return isinstance(sender, dict) and sender.get("id") not in (None, "")


def _user_id(body: dict, anonymous_id: str | None) -> str:
    if not has_user_id(body):
        if anonymous_id is not None:
            return anonymous_id
        if body.get("from") is None:
            raise PayloadError(
                "from.id is required: the user's id (this channel instance does not let anonymous users chat: allow_anonymous)"
            )
    sender = _object(body, "from", "from", required=True)
    value = sender.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise PayloadError("from.id is required: the user's id, a non-empty string")
    if len(value) > MAX_ID:
        raise PayloadError(f"from.id is {len(value)} characters; the limit is {MAX_ID}")
    _storable(value, "from.id")
    return value


def _visitor(body: dict) -> dict:
    info = _object(_object(body, "from", "from"), "userInfo", "from.userInfo")
    first = _text(info, "firstName", "from.userInfo.firstName", limit=100)
    last = _text(info, "lastName", "from.userInfo.lastName", limit=100)
    email = _text(info, "email", "from.userInfo.email", limit=254)
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise PayloadError("from.userInfo.email is not an email address") from None
    visitor = {"name": " ".join(part for part in (first, last) if part), "email": email}
    return {k: v for k, v in visitor.items() if v}


def _tags(body: dict) -> dict[str, dict]:
    """The three tag lists ([{name, value}]), at the top level or under `metaTags`, as {name: value}."""
    holders = [(body, ""), (_object(body, "metaTags", "metaTags"), "metaTags.")]
    found: dict[str, dict] = {}
    for holder, prefix in holders:
        for level in TAG_LISTS:
            tags = holder.get(level)
            if tags is None:
                continue
            path = prefix + level
            if not isinstance(tags, list) or len(tags) > MAX_TAGS:
                raise PayloadError(f"{path} must be an array of at most {MAX_TAGS} {{name, value}} objects")
            for index, tag in enumerate(tags):
                if not isinstance(tag, dict):
                    raise PayloadError(f"{path}[{index}] must be an object with name and value")
                name = _text(tag, "name", f"{path}[{index}].name", limit=100, required=True)
                value = tag.get("value")
                if not (isinstance(value, (str, int, float, bool)) and len(str(value)) <= 1000):
                    raise PayloadError(f"{path}[{index}].value must be a string, number or boolean (at most 1000 characters)")
                _storable(value, f"{path}[{index}].value")
                found.setdefault(level, {})[name] = value
    return found


def _attachments(message: dict, path: str) -> list[dict]:
    attachments = message.get("attachments")
    if attachments is None:
        return []
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        raise PayloadError(f"{path} must be an array of at most {MAX_ATTACHMENTS} objects")
    for index, item in enumerate(attachments):
        if not isinstance(item, dict) or not any(isinstance(item.get(k), str) and item[k] for k in ("url", "fileId", "fileName")):
            raise PayloadError(f"{path}[{index}] must be an object with a url, or a fileName/fileId")
        if len(json.dumps(item)) > 4096:
            raise PayloadError(f"{path}[{index}] is too large (at most 4 KB)")
        _storable(item, f"{path}[{index}]")
    return attachments


def parse(body: dict, *, api_version: str, anonymous_id: str | None = None) -> Parsed:
    """What a caller posted: a message, or (v2) an event; PayloadError naming the field.
    `anonymous_id`: the user a request without `from.id` is (anonymous users may chat)."""
    session = _object(body, "session", "session")
    if "new" in session and not isinstance(session["new"], bool):
        raise PayloadError("session.new must be true or false")
    user_id = _user_id(body, anonymous_id)
    message = _object(body, "message", "message", required=True)
    common = {
        "client_id": user_id,
        "channel": CHANNEL,
        "addressing": {"user_id": user_id, "api_version": api_version},
        "new_session": session.get("new") is True,
        "visitor": _visitor(body),
    }
    if api_version == ApiVersion.V2 and message.get("type") == "event":
        val = message.get("val")
        if val not in EVENTS:
            raise PayloadError(f"message.val must be {' or '.join(EVENTS)} when message.type is event")
        return Parsed("status", {**common, "event": val})
    text, extra = _parse_v2(message) if api_version == ApiVersion.V2 else _parse_v1(message)
    tags = _tags(body)
    metadata = {**extra}
    if tags.get("messageLevelTags"):
        metadata["tags"] = tags["messageLevelTags"]
    attachments = _attachments(message, "message.attachments")
    if attachments:
        metadata["attachments"] = attachments
    if _flag(body, "mergeIdentity", "mergeIdentity"):
        metadata["mergeIdentity"] = True
    language = _text(body, "InteractiveLanguage", "InteractiveLanguage", limit=50)
    if language:
        metadata["language"] = language
    context = {level: tags[level] for level in ("userLevelTags", "sessionLevelTags") if tags.get(level)}
    return Parsed("message", {**common, "text": text, "context": context, "metadata": metadata})


def _parse_v1(message: dict) -> tuple[str, dict]:
    return _text(message, "text", "message.text", limit=MAX_TEXT, required=True), {}


def _parse_v2(message: dict) -> tuple[str, dict]:
    kind = message.get("type")
    if kind not in V2_TYPES:
        raise PayloadError(f"message.type must be one of {', '.join(V2_TYPES)}")
    if kind == "text":
        return _text(message, "val", "message.val", limit=MAX_TEXT, required=True), {}
    val = message.get("val")
    if not isinstance(val, dict) or not val:
        raise PayloadError(f"message.val must be a non-empty object when message.type is {kind}")
    rendered = json.dumps(val, ensure_ascii=False, separators=(",", ":"))
    if len(rendered) > MAX_STRUCTURED:
        raise PayloadError(f"message.val is {len(rendered)} characters as JSON; the limit is {MAX_STRUCTURED}")
    _storable(val, "message.val")
    # The agent reads text: a template's or form's own text when it has one, else its JSON.
    text = val.get("text") if isinstance(val.get("text"), str) and val["text"].strip() else rendered
    return text, {kind: val}
