from celery import shared_task

from portal.services import portal_links_purge


@shared_task(name="portal.tasks.portal_links_purge")
def portal_links_purge_task() -> int:
    """Delete portal links that expired more than a day ago (used or not)."""
    return portal_links_purge()
