"""Celery tasks: ids in, one service call, nothing else."""

from celery import shared_task

from deliveries import services


@shared_task(name="deliveries.tasks.deliveries_send", ignore_result=True)
def deliveries_send(delivery_ids: list[str], lease_token: str) -> int:
    return services.deliveries_send(ids=delivery_ids, token=lease_token)


@shared_task(name="deliveries.tasks.deliveries_sweep", ignore_result=True)
def deliveries_sweep() -> int:
    return services.deliveries_sweep()
