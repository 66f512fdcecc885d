"""Celery tasks of the inbound side: ids in, one service call, nothing else."""

from celery import shared_task

from inbound import services


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
    return services.inbound_purge_old()
