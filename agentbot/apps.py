from django.apps import AppConfig
from django.db.models.signals import post_delete


class AgentbotConfig(AppConfig):
    name = "agentbot"
    verbose_name = "Agentbot"

    def ready(self) -> None:
        from agentbot.models import ApiKey

        # A key deleted by any path (its site's deletion cascades to it) stops working in this
        # process at once, not when its place in the cache of valid keys runs out.
        post_delete.connect(_api_key_deleted, sender=ApiKey, dispatch_uid="agentbot.api_key_deleted")


def _api_key_deleted(sender, instance, **kwargs) -> None:
    from agentbot.services import api_key_forget

    api_key_forget(key_hash=instance.key_hash)
