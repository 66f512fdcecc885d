"""The Chat2Desk connector.

Chat2Desk posts a client's message or a status event to `/api/webhook/chat2desk/{id}` (views.py,
parse.py); a status event closes or pauses the session (services.py). The agent's replies are
posted to `{apiUrl}/v1/messages` through the delivery engine in Chat2Desk's reply format
(reply.py), and the register-webhook helper calls Chat2Desk's API (client.py).
"""

from inbound.connectors import Connector, ReplyDestination, connector_register
from inbound.connectors.chat2desk import reply, services
from inbound.connectors.chat2desk.parse import channel_of
from inbound.models import ConnectorType
from subscriptions.models import WebhookFormat


class Chat2Desk(Connector):
    type = ConnectorType.CHAT2DESK
    reply_format = reply.REPLY_FORMAT

    def channel_of(self, payload: dict) -> str:
        return payload.get("channel") or channel_of(payload.get("transport"))

    def addressing(self, payload: dict) -> dict:
        return services.addressing_of(payload)

    def status_apply(self, event) -> tuple:
        return services.status_apply(event)

    def reply_destination(self, integration) -> ReplyDestination | str:
        if not (integration.api_url and integration.api_token):
            return "the integration has no API URL or API token"
        return ReplyDestination(reply.messages_url(integration.api_url), WebhookFormat.CHAT2DESK, integration.api_token)


connector_register(Chat2Desk())
