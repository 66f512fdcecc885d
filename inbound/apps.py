from django.apps import AppConfig


class InboundConfig(AppConfig):
    """What arrives from messaging channels (connectors), the agent that answers, and its replies."""

    name = "inbound"
    verbose_name = "Inbound channels"
