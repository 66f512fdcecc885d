"""The dispatch lease that publish, the sweep and the operator actions take (see the package docstring)."""

import secrets
from datetime import datetime, timedelta

from django.conf import settings


def lease_token() -> str:
    return secrets.token_hex(16)


def dispatch_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.AGENTBOT_DISPATCH_LEASE)
