"""A webhook channel instance's settings (the webhook channel's document): its API version, mode, POST_URL, polling,
and how its callers' JWTs are verified; checked against each other."""

from django.core.exceptions import ValidationError

from inbound.connectors.webhook_channel.auth import RSA_ALGORITHMS, public_key_problem
from inbound.models import SETTING_DEFAULTS, ApiVersion, ChannelMode, Integration, JwtAlgorithm
from subscriptions.services import webhook_validate_url

CHANNEL_FIELDS = ("api_version", "mode", "post_url", "polling", "jwt_algorithm", "public_key", "allow_anonymous", "auto_register")


def channel_settings(*, changes: dict, current: Integration | None) -> dict:
    """`changes` to the webhook-channel fields, checked against each other and the instance as it
    stands; ValidationError naming the field."""
    merged = {name: getattr(current, name) if current else SETTING_DEFAULTS[name] for name in CHANNEL_FIELDS}
    merged.update(changes)
    cleaned = dict(changes)
    choices = {"api_version": ApiVersion, "mode": ChannelMode, "jwt_algorithm": JwtAlgorithm}
    for name, kind in choices.items():
        if merged[name] not in kind.values:
            raise ValidationError({name: f"unknown value {merged[name]!r}; choose one of {', '.join(kind.values)}"})
    for name in ("allow_anonymous", "auto_register"):
        if name in changes and not isinstance(changes[name], bool):
            raise ValidationError({name: "must be true or false"})
    if "public_key" in changes:
        pem = (changes["public_key"] or "").strip()
        problem = public_key_problem(pem) if pem else None
        if problem:
            raise ValidationError({"public_key": f"the public key {problem}"})
        cleaned["public_key"] = pem + "\n" if pem else ""
    if merged["jwt_algorithm"] in RSA_ALGORITHMS and not (cleaned.get("public_key", merged["public_key"]) or "").strip():
        raise ValidationError(
            {"public_key": f"{merged['jwt_algorithm']} verifies the client's tokens with its public key: set public_key (PEM)"}
        )
    if changes.get("post_url"):
        try:
            cleaned["post_url"] = webhook_validate_url(changes["post_url"])
        except ValidationError as exc:
            raise ValidationError({"post_url": exc.message_dict.get("url", exc.messages)}) from exc
    if merged["mode"] == ChannelMode.ASYNC and not merged["post_url"]:
        raise ValidationError({"post_url": "asynchronous mode posts the agent's messages to the POST_URL: set post_url"})
    return cleaned
