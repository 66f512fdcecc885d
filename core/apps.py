from django.apps import AppConfig
from django.db.models.signals import post_delete


class CoreConfig(AppConfig):
    """The bottom layer: sites and API keys, ids, crypto, logging, and the API and admin helpers."""

    name = "core"
    verbose_name = "Agentbot"

    def ready(self) -> None:
        from core.models import ApiKey

        # A key deleted by any path (its site's deletion cascades to it) stops working in this
        # process at once, not when its place in the cache of valid keys runs out.
        post_delete.connect(_api_key_deleted, sender=ApiKey, dispatch_uid="core.api_key_deleted")


def _api_key_deleted(sender, instance, **kwargs) -> None:
    from core.services import api_key_forget

    api_key_forget(key_hash=instance.key_hash)
