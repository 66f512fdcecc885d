"""Celery tasks of the inbound side: ids in, one service call, nothing else."""

from celery import shared_task

from inbound import services
from inbound.connectors.webhook_channel import uploads


# The names keep the module these tasks had before inbound became an app: beat schedules and
# queued messages name them.
@shared_task(name=services.INBOUND_PROCESS_TASK, ignore_result=True)
def inbound_process(event_id: str) -> str | None:
    return services.inbound_process(event_id=event_id)


@shared_task(name="agentbot.tasks.inbound_sweep", ignore_result=True)
def inbound_sweep() -> int:
    return services.inbound_sweep()


@shared_task(name="agentbot.tasks.inbound_retention", ignore_result=True)
def inbound_retention() -> int:
    # The webhook channel's uploaded files age with the inbound log they came with.
    return services.inbound_purge_old() + uploads.uploads_purge_old()
