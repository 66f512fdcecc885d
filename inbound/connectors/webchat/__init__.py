"""The webchat connector: visitors talk to the agent from the embeddable widget over Socket.IO
(socket.py, served by agentbot/asgi.py), answered in the socket server's own process
(services.py); `/webchat/demo` embeds the widget (views.py). Its replies go back on the visitor's
connection, never to a reply destination.
"""

from inbound.connectors import Connector, connector_register
from inbound.models import ConnectorType


class Webchat(Connector):
    type = ConnectorType.WEBCHAT

    def replies_returned(self, integration) -> bool:
        return True

    def reply_destination(self, integration) -> str:
        return "a webchat's replies go back over the visitor's connection"


connector_register(Webchat())
