"""OAuth2 client credentials for webhooks whose receivers want a bearer token from their own
authorisation server.

The token is fetched through the hardened client (deliveries/engine/http.py: the URL policy, bounded
time, no redirects) and cached per webhook in this process until shortly before it expires, so
every delivery the worker sends to that webhook shares it; concurrent deliveries wait for one
fetch. A 401 from the receiver refreshes the token once and sends again before the attempt
counts; a token endpoint that fails makes the attempt fail with its reason. Runs on the HTTP
client's event loop only.
"""

import asyncio
import json
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from core.process import PerProcess
from deliveries.engine import http
from deliveries.engine.endpoint_auth import OAuth2, basic_authorization

# A token is renewed this long before it expires (or at a tenth of its life, if shorter), so a
# request never leaves with a token that runs out on the way.
REFRESH_MARGIN = 30.0
# A token endpoint that gives no expires_in: its token is used for this long.
DEFAULT_LIFETIME = 300.0
TOKEN_BODY_CAP = 65_536
# A token endpoint that failed is not asked again for this long: the deliveries waiting for the
# same token fail with the same reason instead of each asking in turn.
FAILURE_HOLD = 5.0
TOKEN_TIMEOUT = 10.0


class TokenError(Exception):
    """The token endpoint did not give a token; the message says why (no secret in it)."""


@dataclass
class Token:
    value: str
    renew_at: float  # time.monotonic()


class Tokens:
    """This process's tokens, per webhook and grant (a changed secret or scope is a new grant)."""

    def __init__(self) -> None:
        self.tokens: dict[tuple[str, OAuth2], Token] = {}
        self.locks: dict[tuple[str, OAuth2], asyncio.Lock] = {}
        self.failures: dict[tuple[str, OAuth2], tuple[str, float]] = {}  # the reason, until when it holds
        self.fetches = 0  # how many tokens this process fetched (for tests and metrics)

    async def get(self, webhook_id: str, grant: OAuth2, *, stale: str | None = None) -> str:
        """A live token; `stale` is one the receiver refused, to be replaced (once, whoever asks first)."""
        key = (webhook_id, grant)
        found = self._live(key, stale)
        if found:
            return found
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            found = self._live(key, stale)
            if found:
                return found
            failed = self.failures.get(key)
            if failed and failed[1] > time.monotonic():
                raise TokenError(failed[0])
            for old in [k for k in self.tokens if k[0] == webhook_id]:
                del self.tokens[old]  # a previous grant of this webhook (its secret or scope changed)
            self.fetches += 1
            try:
                token = await token_fetch(grant)
            except TokenError as exc:
                self.failures[key] = (str(exc), time.monotonic() + FAILURE_HOLD)
                raise
            self.failures.pop(key, None)
            self.tokens[key] = token
            return token.value

    def _live(self, key, stale: str | None) -> str | None:
        token = self.tokens.get(key)
        if token and token.renew_at > time.monotonic() and token.value != stale:
            return token.value
        return None


_TOKENS: PerProcess[Tokens] = PerProcess(Tokens)


def tokens() -> Tokens:
    return _TOKENS.get()


async def token_fetch(grant: OAuth2) -> Token:
    """One client-credentials request (RFC 6749 §4.4), the client authenticated with HTTP Basic."""
    form = {"grant_type": "client_credentials"}
    if grant.scope:
        form["scope"] = grant.scope
    if grant.audience:
        form["audience"] = grant.audience
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
        # RFC 6749 §2.3.1: the id and secret are form-encoded before they are joined.
        "Authorization": basic_authorization(quote(grant.client_id, safe=""), quote(grant.client_secret, safe="")),
    }
    result = await http.send(
        http.OutboundRequest(grant.token_url, urlencode(form).encode(), headers, timeout=TOKEN_TIMEOUT, body_cap=TOKEN_BODY_CAP)
    )
    if result.error:
        raise TokenError(result.error)
    if not 200 <= (result.status_code or 0) < 300:
        detail = _error_detail(result.body)
        raise TokenError(f"the token endpoint answered HTTP {result.status_code}{detail}")
    try:
        answer = json.loads(result.body)
    except ValueError as exc:
        raise TokenError("the token endpoint's answer is not JSON") from exc
    if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str) or not answer["access_token"]:
        raise TokenError("the token endpoint's answer has no access_token")
    kind = answer.get("token_type", "bearer")
    if not isinstance(kind, str) or kind.lower() != "bearer":
        raise TokenError(f"the token endpoint gave a {kind!r} token; only bearer tokens are supported")
    lifetime = answer.get("expires_in", DEFAULT_LIFETIME)
    if isinstance(lifetime, str) and lifetime.isdigit():
        lifetime = int(lifetime)
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_LIFETIME
    margin = min(REFRESH_MARGIN, lifetime / 10)
    return Token(answer["access_token"], time.monotonic() + lifetime - margin)


def _error_detail(body: bytes) -> str:
    """The OAuth2 error code of a refused request (RFC 6749 §5.2), as in `invalid_client`."""
    try:
        answer = json.loads(body)
    except ValueError:
        return ""
    code = answer.get("error") if isinstance(answer, dict) else None
    return f" ({code[:100]})" if isinstance(code, str) and code.isprintable() else ""


async def send_with_token(webhook_id: str, grant: OAuth2, request: http.OutboundRequest) -> http.OutboundResult:
    """Send `request` with the webhook's token; on a 401 once more with a fresh token."""
    cache = tokens()
    try:
        token = await cache.get(webhook_id, grant)
    except TokenError as exc:
        return http.OutboundResult(error=f"OAuth2 token not obtained: {exc}")
    request.headers["Authorization"] = f"Bearer {token}"
    result = await http.send(request)
    if result.status_code != 401:
        return result
    try:
        fresh = await cache.get(webhook_id, grant, stale=token)
    except TokenError as exc:
        result.error = f"HTTP 401, and a new OAuth2 token was not obtained: {exc}"
        return result
    request.headers["Authorization"] = f"Bearer {fresh}"
    return await http.send(request)
