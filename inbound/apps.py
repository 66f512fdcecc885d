from django.apps import AppConfig


class InboundConfig(AppConfig):
    """What arrives from messaging channels (connectors), the agent that answers, and its replies."""

    name = "inbound"
    verbose_name = "Inbound channels"

    def ready(self) -> None:
        # Runs in every process that loads Django (web, Socket.IO, Celery workers, the delivery
        # engine): the domain tells the inbound side of a person's reply through domain/hooks.py.
        from domain.hooks import person_reply_hook_register
        from inbound.connectors import connectors_load
        from inbound.services import person_reply_relay

        # Each connector registers itself and its reply format (deliveries/formats/__init__.py): a worker
        # that sends a Chat2Desk reply must know its format.
        connectors_load()
        person_reply_hook_register(person_reply_relay)
