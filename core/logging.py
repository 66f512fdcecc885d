"""Structured logs: one JSON object per line, with the ids of what a line is about as fields.

A delivery line carries `delivery_id`, `event_id` and `webhook_id`, so an operator can follow one
delivery through web, worker and beat with a single filter. Logs never hold secrets or bodies: the
formatter drops fields with such names and masks anything shaped like a signing secret, whatever
the caller passed.
"""

import json
import logging
import re
import traceback
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else on a record came from `extra=` and is a field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

# Field names that may hold a secret or a payload: never written, whatever their value.
FORBIDDEN_FIELDS = frozenset(
    {
        "secret",
        "secrets",
        "previous_secret",
        "password",
        "api_key",
        "authorization",
        "token",
        "lease_token",
        "body",
        "request_body",
        "response_body",
        "payload",
        "data",
        "headers",
        "request_headers",
        "response_headers",
        "signature",
    }
)

_DROPPED_FIELDS = FORBIDDEN_FIELDS | _RECORD_ATTRIBUTES

_SECRET_SHAPE = re.compile(r"whsec_[A-Za-z0-9+/=]{8,}")


def redact(text: str) -> str:
    """Mask signing secrets (`whsec_…`) that found their way into a message."""
    return _SECRET_SHAPE.sub("whsec_[redacted]", text)


def _plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return redact(value) if isinstance(value, str) else value
    if isinstance(value, datetime):
        return value.isoformat()
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", ...fields, "exception"?}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and name not in FORBIDDEN_FIELDS and not name.startswith("_"):
                line[name] = _plain(value)
        if record.exc_info:
            line["exception"] = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
        return json.dumps(line, ensure_ascii=False)


def log_delivery(
    logger: logging.Logger,
    level: int,
    message: str,
    /,
    *,
    delivery_id: str,
    event_id: str,
    webhook_id: str,
    exc_info=None,
    **fields,
) -> None:
    """Log one line about one delivery, with its three ids as fields.

    `fields` are small facts (attempt number, status code, duration, error class); fields named
    like a secret or a body (see FORBIDDEN_FIELDS), or like a LogRecord attribute, are dropped
    rather than written: a log call never raises.
    """
    if not logger.isEnabledFor(level):  # a worker logs every attempt at DEBUG: most calls stop here
        return
    extra = {name: value for name, value in fields.items() if name not in _DROPPED_FIELDS}
    extra.update(delivery_id=delivery_id, event_id=event_id, webhook_id=webhook_id)
    logger.log(level, message, extra=extra, exc_info=exc_info)
