"""Celery tasks: ids in, one service call, nothing else."""

from celery import shared_task
from celery.signals import worker_process_shutdown, worker_shutdown
from django.conf import settings

from deliveries import retention
from deliveries.engine import engine, outbox
from deliveries.services import leads_reoffer, send


@shared_task(name=outbox.SEND_TASK, ignore_result=True)
def deliveries_send(delivery_ids: list[str], lease_token: str) -> int:
    # Hands the batch to this process's engine and returns: a slow endpoint never holds the worker.
    return send.deliveries_send(ids=delivery_ids, token=lease_token, wait=False)


@shared_task(name="deliveries.tasks.webhook_alert_email", ignore_result=True)
def webhook_alert_email(event_id: str) -> int:
    from deliveries.services.alerts import webhook_alert_email as send_alert

    return send_alert(event_id=event_id)


@shared_task(name="deliveries.tasks.deliveries_sweep", ignore_result=True)
def deliveries_sweep() -> int:
    return send.deliveries_sweep()


@worker_process_shutdown.connect
@worker_shutdown.connect
def engine_stop(**kwargs) -> None:
    """On a warm shutdown, let what is in flight finish and be recorded (bounded by the timeout)."""
    engine.engine_stop(timeout=settings.AGENTBOT_HTTP_TIMEOUT + 5)


@shared_task(name="deliveries.tasks.leads_reoffer_failed", ignore_result=True)
def leads_reoffer_failed() -> int:
    return leads_reoffer.leads_reoffer_failed()


@shared_task(name="deliveries.tasks.retention_run", ignore_result=True)
def retention_run() -> dict:
    return retention.retention_run()
