"""Chat2Desk's API: the register-webhook helper's calls to `{apiUrl}/v1/webhooks`.
The agent's replies go to `{apiUrl}/v1/messages` through the delivery engine instead (reply.py).
"""

import json

from deliveries.engine import http
from deliveries.formats.types import USER_AGENT
from inbound.connectors.chat2desk.parse import REGISTERED_EVENTS
from inbound.connectors.chat2desk.reply import reply_success


class Chat2DeskError(Exception):
    """Chat2Desk's API refused or could not be reached; the message says which and why."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _call(method: str, url: str, token: str, body: dict) -> dict:
    headers = {"Authorization": token, "Content-Type": "application/json", "User-Agent": USER_AGENT}
    result = http.post(http.OutboundRequest(url, json.dumps(body).encode(), headers, method=method))
    if result.error:
        raise Chat2DeskError(f"{method} {url}: {result.error}")
    # The same rule as the replies' deliveries: 2xx, unless Chat2Desk says `"status": "error"`.
    if not reply_success(result.status_code, result.body):
        detail = result.body[:300].decode("utf-8", "replace")
        raise Chat2DeskError(f"Chat2Desk answered {result.status_code} to {method} {url}: {detail}", result.status_code)
    try:
        answer = json.loads(result.body or b"{}")
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def webhook_register(*, api_url: str, token: str, url: str, name: str, remote_id: str) -> str:
    """Create Chat2Desk's webhook registration for `url`, or update `remote_id`; the registration's id."""
    body = {"url": url, "name": name, "events": REGISTERED_EVENTS}
    base = api_url.rstrip("/")
    if remote_id:
        try:
            _call("PUT", f"{base}/v1/webhooks/{remote_id}", token, body)
            return remote_id
        except Chat2DeskError as exc:
            if exc.status != 404:
                raise
            # Deleted on Chat2Desk's side: register anew.
    answer = _call("POST", f"{base}/v1/webhooks", token, body)
    data = answer.get("data") if isinstance(answer.get("data"), dict) else answer
    remote = data.get("id")
    if remote in (None, ""):
        raise Chat2DeskError(f"Chat2Desk registered the webhook but sent no id back: {json.dumps(answer)[:300]}")
    return str(remote)
