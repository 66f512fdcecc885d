"""What JSON Web Encryption costs the webhook channel per request: the time to check a plain JWT
and a JWE-wrapped one (RSA-OAEP-256 + A256GCM) with the instance's key, in this process, no
database. `.venv/bin/python bench/jwe_tokens.py [--tokens 300]`."""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentbot.settings")

import django  # noqa: E402

django.setup()

import jwt  # noqa: E402
from jwcrypto import jwe, jwk  # noqa: E402

from inbound.connectors.webhook_channel.auth import jwt_claims  # noqa: E402
from inbound.models import Integration, generate_jwe_private_key  # noqa: E402


def per_token(integration: Integration, token: str, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        jwt_claims(integration=integration, authorization=f"bearer {token}")
    return (time.perf_counter() - started) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=300)
    count = parser.parse_args().tokens
    secret = "s" * 64
    instance = Integration(connector_type="webhook", client_secret=secret, jwe_private_key=generate_jwe_private_key())
    instance.client_id, instance.jwt_algorithm = "cs-bench", "HS256"
    plain = jwt.encode({"appId": "cs-bench", "exp": int(time.time()) + 600}, secret, algorithm="HS256")
    wrapped = jwe.JWE(plain.encode(), protected={"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT"})
    wrapped.add_recipient(jwk.JWK.from_pem(instance.jwe_public_key.encode()))
    encrypted = wrapped.serialize(compact=True)
    print(f"plain JWT: {per_token(instance, plain, count):.2f} ms per token")
    print(f"JWE:       {per_token(instance, encrypted, count):.2f} ms per token")


if __name__ == "__main__":
    main()
