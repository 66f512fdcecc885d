"""What the apps above the domain want to hear of, registered by them (the domain imports none of them).

`person_reply_hooks`: called when a person (sender `agent`) writes in a conversation that came
from an integration, inside the transaction that stored the message, with the conversation
row-locked; so what a hook stores commits or rolls back with the message. The inbound app
registers the relay to the integration's connector at ready().
"""

from collections.abc import Callable

PersonReplyHook = Callable[..., None]  # (*, conversation, message) -> None
person_reply_hooks: list[PersonReplyHook] = []


def person_reply_hook_register(hook: PersonReplyHook) -> None:
    """Add `hook` once: an app's ready() may run more than once (tests, reloads)."""
    if hook not in person_reply_hooks:
        person_reply_hooks.append(hook)


def person_reply_hooks_run(*, conversation, message) -> None:
    for hook in person_reply_hooks:
        hook(conversation=conversation, message=message)
