"""Secrets at rest: a model field that stores Fernet ciphertext and hands out plain text.

The key comes from AGENTBOT_ENCRYPTION_KEYS (comma-separated Fernet keys, the first one used to
encrypt, all tried to decrypt, so keys can be rotated) or, when unset, is derived from
DJANGO_SECRET_KEY.
"""

import base64
import hashlib
import os
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    raw = os.environ.get("AGENTBOT_ENCRYPTION_KEYS", "").strip()
    if raw:
        keys = [k.strip().encode() for k in raw.split(",") if k.strip()]
    else:
        digest = hashlib.sha256(b"agentbot-secrets:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest)]
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError(
            "a stored secret cannot be decrypted: AGENTBOT_ENCRYPTION_KEYS or DJANGO_SECRET_KEY changed since it was written"
        ) from exc


class EncryptedTextField(models.TextField):
    """Plain text in Python, Fernet ciphertext in the database; an empty string stays empty."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if not value:
            return value
        return encrypt(value)
