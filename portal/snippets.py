"""The verification snippet the portal shows beside a new secret, one per format (the README's
receiver guide has the Node versions and the details)."""

from subscriptions.models import WebhookFormat

_HEX_SHA256 = """import hashlib, hmac, time

def verify(secret: str, headers: dict, raw_body: bytes, tolerance: int = 300) -> bool:
    parts = [p.split("=", 1) for p in headers.get("{header}", "").split(",") if "=" in p]
    t = next((v for k, v in parts if k == "t"), "")
    if not t.isdigit() or abs(time.time() - int(t)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), t.encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    return any(k == "v1" and hmac.compare_digest(v, expected) for k, v in parts)
"""

SNIPPETS = {
    WebhookFormat.AGENTBOT: _HEX_SHA256.replace("{header}", "x-agentbot-signature"),
    WebhookFormat.LEADS: _HEX_SHA256.replace("{header}", "x-webhook-signature"),
    WebhookFormat.CHATZURI: """import hashlib, hmac

def verify(secret: str, headers: dict, raw_body: bytes) -> bool:
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha1).hexdigest()
    return hmac.compare_digest(expected, headers.get("x-chatzuri-signature", ""))
""",
    WebhookFormat.STANDARD: """# pip install standardwebhooks
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

def verify(secret: str, headers: dict, raw_body: bytes) -> bool:
    try:
        Webhook(secret).verify(raw_body, headers)
    except WebhookVerificationError:
        return False
    return True
""",
}


def verification_snippet(format: str) -> str:
    """Python that checks a delivery of `format`; empty for the chat formats, which are not
    signed (their URL is the credential)."""
    return SNIPPETS.get(format, "")
