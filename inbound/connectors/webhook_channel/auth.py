"""The webhook channel's caller authentication: a JWT in `Authorization: bearer <token>`.

HS256/HS512 tokens are signed with the instance's client secret, RS256/RS512 ones with the
caller's private key and checked with the public key it gave us. Either way the token's `appId`
is the instance's client id, and `exp` (when present) must lie in the future. A `userIdentity`
claim pins the token to one user: the payload's `from.id` must be that user.
"""

import base64
import json
import secrets
from functools import lru_cache

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwcrypto import jwe, jwk
from jwcrypto.common import JWException

from inbound.models import Integration, JwtAlgorithm

HMAC_ALGORITHMS = (JwtAlgorithm.HS256, JwtAlgorithm.HS512)
RSA_ALGORITHMS = (JwtAlgorithm.RS256, JwtAlgorithm.RS512)
# Clocks of the caller and of this service may differ a little.
LEEWAY_SECONDS = 30
MAX_TOKEN = 8192


# JSON Web Encryption: a caller may encrypt its JWT to the instance's public key, with these only.
JWE_KEY_ALGORITHMS = ("RSA-OAEP", "RSA-OAEP-256")
JWE_CONTENT_ENCRYPTIONS = ("A128GCM", "A256GCM")


class AuthError(Exception):
    """The caller is not let in; the message says why in words a person can act on."""


def generate_client_secret() -> str:
    # 48 random bytes: more than HS512's 64-byte block needs to be a strong key.
    return secrets.token_urlsafe(48)


def public_key_problem(pem: str) -> str | None:
    """What is wrong with `pem` as an RS256/RS512 verification key, or None when it is usable."""
    try:
        key = load_pem_public_key(pem.strip().encode("utf-8"))
    except (ValueError, TypeError, UnicodeError):
        return "is not a PEM public key (-----BEGIN PUBLIC KEY-----…)"
    except Exception:  # cryptography raises its own types for unsupported key material
        return "is not a PEM public key (-----BEGIN PUBLIC KEY-----…)"
    if not isinstance(key, RSAPublicKey):
        return "must be an RSA public key: RS256 and RS512 verify with RSA"
    if key.key_size < 2048:
        return f"is a {key.key_size}-bit RSA key; use at least 2048 bits"
    return None


def bearer_token(header: str) -> str:
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("send a JWT in the Authorization header: Authorization: bearer <token>")
    token = token.strip()
    if len(token) > MAX_TOKEN:
        raise AuthError(f"the token is longer than {MAX_TOKEN} characters")
    return token


def _verification_key(integration: Integration):
    if integration.jwt_algorithm in HMAC_ALGORITHMS:
        if not integration.client_secret:
            raise AuthError("this channel instance has no client secret; rotate its credentials to make one")
        return integration.client_secret
    if not integration.public_key:
        raise AuthError("this channel instance has no public key; set the client's RS256/RS512 public key first")
    return load_pem_public_key(integration.public_key.strip().encode("utf-8"))


def _jwe_header(token: str) -> dict:
    encoded = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, UnicodeError):
        raise AuthError("the encrypted token's header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise AuthError("the encrypted token's header is not a JSON object")
    return header


@lru_cache(maxsize=256)
def _jwe_key(pem: str) -> jwk.JWK:
    # Loading (and checking) an RSA private key costs ~150 ms; decrypting with a loaded one ~1 ms.
    return jwk.JWK.from_pem(pem.encode())


def jwe_decrypt(*, integration: Integration, token: str) -> str:
    """The JWT inside a compact JWE encrypted to the instance's public key; AuthError saying why not."""
    header = _jwe_header(token)
    alg, enc = header.get("alg"), header.get("enc")
    if alg not in JWE_KEY_ALGORITHMS or enc not in JWE_CONTENT_ENCRYPTIONS:
        raise AuthError(
            f"the token is encrypted with alg {alg!r} and enc {enc!r}; this channel instance decrypts "
            f"alg {' or '.join(JWE_KEY_ALGORITHMS)} with enc {' or '.join(JWE_CONTENT_ENCRYPTIONS)}"
        )
    if "zip" in header:
        raise AuthError("compressed encrypted tokens (zip) are not accepted; encrypt the JWT as it is")
    if not integration.jwe_private_key:
        raise AuthError("this channel instance has no JWE key; send the JWT unencrypted")
    encrypted = jwe.JWE(algs=[*JWE_KEY_ALGORITHMS, *JWE_CONTENT_ENCRYPTIONS])
    try:
        encrypted.deserialize(token, key=_jwe_key(integration.jwe_private_key))
        inner = encrypted.payload.decode("utf-8")
    except (JWException, ValueError, UnicodeError):
        raise AuthError(
            "the encrypted token cannot be decrypted with this channel instance's key: encrypt it to the "
            "instance's JWE public key, and send it unchanged"
        ) from None
    if inner.count(".") != 2:
        raise AuthError("the encrypted token does not hold a signed JWT")
    return inner


def jwt_claims(*, integration: Integration, authorization: str) -> dict:
    """The verified claims of the caller's token, or AuthError saying why it is refused. A compact
    JWE (five parts) is decrypted first; the JWT inside is then verified as a plain one is."""
    token = bearer_token(authorization)
    if token.count(".") == 4:
        token = jwe_decrypt(integration=integration, token=token)
    algorithm = integration.jwt_algorithm
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AuthError("the Authorization token is not a JWT") from None
    if header.get("alg") != algorithm:
        raise AuthError(f"the token is signed with {header.get('alg')!r}; this channel instance expects {algorithm}")
    try:
        claims = jwt.decode(
            token,
            _verification_key(integration),
            algorithms=[algorithm],
            leeway=LEEWAY_SECONDS,
            options={"require": ["appId"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("the token has expired (exp); sign a new one") from None
    except jwt.ImmatureSignatureError:
        raise AuthError("the token is not valid yet (nbf or iat lies in the future)") from None
    except jwt.MissingRequiredClaimError:
        raise AuthError("the token has no appId claim: put the channel instance's client id in appId") from None
    except jwt.InvalidSignatureError:
        key = "client secret" if algorithm in HMAC_ALGORITHMS else "public key"
        raise AuthError(f"the token's signature does not match this channel instance's {key}") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"the token is not valid: {exc}") from None
    if claims.get("appId") != integration.client_id:
        raise AuthError("the token's appId is not this channel instance's client id")
    return claims


def user_identity_matches(*, claims: dict, user_id: str) -> bool:
    """The webhook channel's document: a token that names a `userIdentity` is good only for that user's messages."""
    identity = claims.get("userIdentity")
    return identity in (None, "") or str(identity) == user_id
