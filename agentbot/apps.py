from django.apps import AppConfig


class AgentbotConfig(AppConfig):
    name = "agentbot"
    verbose_name = "Agentbot"
