import os

from celery import Celery
from celery.signals import task_prerun, worker_process_init, worker_ready
from django.db import close_old_connections

from agentbot.startup import freeze_startup_objects

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentbot.settings")

app = Celery("agentbot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect  # the threads pool: tasks run in the worker's own process
@worker_process_init.connect  # the prefork pool: each child process
def startup_objects_frozen(**kwargs) -> None:
    freeze_startup_objects()


@task_prerun.connect
def connections_checked(sender=None, **kwargs) -> None:
    """As Django does per request, close the thread's connection before a task (CONN_MAX_AGE=0:
    on PostgreSQL it goes back to the process's pool, which checks it before lending it again).
    Every app's tasks run under it, so it is the Celery app's, not one app's."""
    if not getattr(getattr(sender, "request", None), "is_eager", False):  # never inside a caller's transaction
        close_old_connections()
