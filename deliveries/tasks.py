"""Celery tasks: ids in, one service call, nothing else."""

from celery import shared_task
from celery.signals import task_prerun, worker_process_shutdown, worker_shutdown
from django.conf import settings
from django.db import close_old_connections

from deliveries import engine
from deliveries.services import send


@shared_task(name="deliveries.tasks.deliveries_send", ignore_result=True)
def deliveries_send(delivery_ids: list[str], lease_token: str) -> int:
    # Hands the batch to this process's engine and returns: a slow endpoint never holds the worker.
    return send.deliveries_send(ids=delivery_ids, token=lease_token, wait=False)


@shared_task(name="deliveries.tasks.webhook_alert_email", ignore_result=True)
def webhook_alert_email(event_id: str) -> int:
    from deliveries.alerts import webhook_alert_email as send_alert

    return send_alert(event_id=event_id)


@shared_task(name="deliveries.tasks.deliveries_sweep", ignore_result=True)
def deliveries_sweep() -> int:
    return send.deliveries_sweep()


@task_prerun.connect
def connections_checked(sender=None, **kwargs) -> None:
    """As Django does per request, close the thread's connection before a task (CONN_MAX_AGE=0:
    on PostgreSQL it goes back to the process's pool, which checks it before lending it again)."""
    if not getattr(getattr(sender, "request", None), "is_eager", False):  # never inside a caller's transaction
        close_old_connections()


@worker_process_shutdown.connect
@worker_shutdown.connect
def engine_stop(**kwargs) -> None:
    """On a warm shutdown, let what is in flight finish and be recorded (bounded by the timeout)."""
    engine.engine_stop(timeout=settings.AGENTBOT_HTTP_TIMEOUT + 5)


from deliveries import leads_reoffer  # noqa: E402


@shared_task(name="deliveries.tasks.leads_reoffer_failed", ignore_result=True)
def leads_reoffer_failed() -> int:
    return leads_reoffer.leads_reoffer_failed()


@shared_task(name="deliveries.tasks.retention_run", ignore_result=True)
def retention_run() -> dict:
    from deliveries.retention import retention_run as run

    return run()
