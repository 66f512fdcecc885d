"""Callers of the webhook channel (seed 003) in tests: real JWTs, signed as a client would sign them."""

import json
import time
from functools import cache

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@cache
def rsa_key_pair(name: str = "client") -> tuple[str, str]:
    """(private PEM, public PEM) of a fresh 2048-bit RSA key, one per name for the test session."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def token(integration, *, key=None, app_id=None, expires_in: float = 300, **claims) -> str:
    """A JWT for the instance: signed with its client secret (HS) or the client's private key (RS)."""
    if key is None:
        key = integration.client_secret if integration.jwt_algorithm.startswith("HS") else rsa_key_pair()[0]
    now = int(time.time())
    body = {"appId": integration.client_id if app_id is None else app_id, "iat": now, "exp": now + int(expires_in), **claims}
    return jwt.encode(body, key, algorithm=integration.jwt_algorithm)


def hook_url(integration) -> str:
    return integration.webhook_path


def post_hook(client, integration, payload, *, url: str | None = None, bearer: str | None = None, **token_claims):
    headers = {"Authorization": f"bearer {bearer if bearer is not None else token(integration, **token_claims)}"}
    return client.generic(
        "POST", url or hook_url(integration), json.dumps(payload), content_type="application/json", headers=headers
    )


def v1_message(user_id: str, text: str, **more) -> dict:
    return {"message": {"text": text}, "from": {"id": user_id}, **more}


def v2_message(user_id: str, val, kind: str = "text", **more) -> dict:
    return {"message": {"type": kind, "val": val}, "from": {"id": user_id}, **more}
