"""The webhook channel connector.

Callers post to `/chatbot/hooks/{botId}[/hookInstance/{id}]` with a JWT (views.py, auth.py,
parse.py); an instance answers in its mode (services.py): synchronously in the response, v2
with polling, or asynchronously, each reply posted to its POST_URL in the webhook channel's
reply format (reply.py). An instance's settings are checked in instance_settings.py.
"""

from inbound.connectors import Connector, ReplyDestination, connector_register
from inbound.connectors.webhook_channel import reply, services
from inbound.models import ChannelMode, ConnectorType
from subscriptions.models import WebhookFormat


class WebhookChannel(Connector):
    type = ConnectorType.WEBHOOK
    reply_format = reply.REPLY_FORMAT

    def replies_returned(self, integration) -> bool:
        return integration.mode != ChannelMode.ASYNC

    def reply_destination(self, integration) -> ReplyDestination | str:
        # Kept in synchronous mode too (disabled), so its signing secret is there from the start.
        held = "" if integration.mode == ChannelMode.ASYNC and integration.post_url else "the channel instance is synchronous"
        return ReplyDestination(integration.post_url, WebhookFormat.WEBHOOK_CHANNEL, held=held)

    def turn_ended(self, *, event, conversation, handed_off: bool) -> None:
        services.end_of_task_send(event=event, conversation=conversation, handed_off=handed_off)

    def person_reply(self, *, conversation, message) -> None:
        services.person_reply_relay(conversation=conversation, message=message)


connector_register(WebhookChannel())
