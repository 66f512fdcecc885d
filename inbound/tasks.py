"""Celery tasks of the inbound side: ids in, one service call, nothing else."""

from celery import shared_task

from inbound import services
from inbound.connectors.webhook_channel import uploads


@shared_task(name=services.INBOUND_PROCESS_TASK, ignore_result=True)
def inbound_process(event_id: str) -> str | None:
    return services.inbound_process(event_id=event_id)


@shared_task(name="inbound.tasks.inbound_sweep", ignore_result=True)
def inbound_sweep() -> int:
    return services.inbound_sweep()


@shared_task(name="inbound.tasks.inbound_retention", ignore_result=True)
def inbound_retention() -> int:
    # The webhook channel's uploaded files age with the inbound log they came with.
    return services.inbound_purge_old() + uploads.uploads_purge_old()


# The same tasks under their earlier names (`agentbot.tasks.*`): a message already queued, or a
# beat schedule not yet restarted, under such a name runs the task above.
ALIASES = {
    "agentbot.tasks.inbound_process": inbound_process,
    "agentbot.tasks.inbound_sweep": inbound_sweep,
    "agentbot.tasks.inbound_retention": inbound_retention,
}
for _name, _task in ALIASES.items():
    shared_task(name=_name, ignore_result=True)(_task.run)
