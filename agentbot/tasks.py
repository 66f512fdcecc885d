"""Celery tasks of the inbound side: ids in, one service call, nothing else."""

from celery import shared_task

from agentbot.inbound import services


@shared_task(name="agentbot.tasks.inbound_process", ignore_result=True)
def inbound_process(event_id: str) -> str | None:
    return services.inbound_process(event_id=event_id)


@shared_task(name="agentbot.tasks.inbound_sweep", ignore_result=True)
def inbound_sweep() -> int:
    return services.inbound_sweep()


@shared_task(name="agentbot.tasks.inbound_retention", ignore_result=True)
def inbound_retention() -> int:
    return services.inbound_purge_old()
