from django.apps import AppConfig


class AgentbotConfig(AppConfig):
    """The project: settings, urls, the Celery app and the `serve` command. It has no models; its
    migrations are the history of the tables that now belong to core, domain and inbound."""

    name = "agentbot"
    verbose_name = "Agentbot project"
