from django.apps import AppConfig


class DomainConfig(AppConfig):
    """The agent's records: conversations, messages, tickets, leads, appointments."""

    name = "domain"
    verbose_name = "Conversations"
