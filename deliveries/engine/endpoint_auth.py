"""What a webhook's delivery controls add to its requests: its own headers, its authentication
(HTTP Basic, a bearer token, or an OAuth2 client-credentials token fetched and cached here), and
its TLS context (a client certificate, a private CA).

Built once per version of the webhook's row (the take caches the row, deliveries/bulk/common.py),
so a batch of deliveries to one webhook shares one set of headers and one SSL context."""

import base64
from dataclasses import dataclass
from functools import lru_cache
from ssl import SSLContext

from subscriptions.tls import ssl_context_build


@dataclass(frozen=True)
class OAuth2:
    """An OAuth2 client-credentials grant: where to get a token and with what."""

    token_url: str
    client_id: str
    client_secret: str
    scope: str = ""
    audience: str = ""


@dataclass(frozen=True)
class Controls:
    """What a webhook's requests carry beyond the format's body and headers."""

    headers: dict[str, str]  # its own headers and a Basic or bearer Authorization
    oauth2: OAuth2 | None = None
    ssl: SSLContext | None = None


NO_CONTROLS = Controls(headers={})


def basic_authorization(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def webhook_controls(webhook) -> Controls:
    """The Controls of a webhook as the take loaded it; NO_CONTROLS for most."""
    auth = webhook.auth or {}
    if not (webhook.headers or auth or webhook.tls_client_cert or webhook.tls_ca_cert):
        return NO_CONTROLS
    headers = dict(webhook.headers or {})
    kind = auth.get("type")
    oauth2 = None
    if kind == "basic":
        headers["Authorization"] = basic_authorization(auth.get("username", ""), webhook.auth_secret)
    elif kind == "bearer":
        headers["Authorization"] = f"Bearer {webhook.auth_secret}"
    elif kind == "oauth2":
        oauth2 = OAuth2(
            token_url=auth.get("token_url", ""),
            client_id=auth.get("client_id", ""),
            client_secret=webhook.auth_secret,
            scope=auth.get("scope", ""),
            audience=auth.get("audience", ""),
        )
    context = None
    if webhook.tls_client_cert or webhook.tls_ca_cert:
        context = webhook_ssl_context(webhook.tls_client_cert, webhook.tls_client_key, webhook.tls_ca_cert)
    return Controls(headers=headers, oauth2=oauth2, ssl=context)


@lru_cache(maxsize=256)
def webhook_ssl_context(cert: str, key: str, ca: str) -> SSLContext:
    """One SSL context per distinct certificate, key and CA in this process: the client pools
    connections per context, so deliveries to one webhook share their TLS connections."""
    return ssl_context_build(cert=cert, key=key, ca=ca)
