import os
import sys

from celery import Celery
from celery.signals import task_prerun, worker_process_init, worker_ready
from django.db import close_old_connections

from agentbot.startup import freeze_startup_objects

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentbot.settings")

app = Celery("agentbot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# The delivery engine's event loop shares the GIL with the task threads, the recorder and Celery's
# consumer. At Python's default switch interval (5 ms), each time the loop lets the GIL go to wait on
# its sockets, a busy thread may keep it up to 5 ms before the loop has it back, and the loop's
# requests wait in a convoy; at 0.5 ms the loop is back ten times sooner (bench/PROFILE.md).
WORKER_SWITCH_INTERVAL = 0.0005


@worker_ready.connect  # the threads pool: tasks run in the worker's own process
@worker_process_init.connect  # the prefork pool: each child process
def worker_process_prepared(**kwargs) -> None:
    """Start-up objects out of the collector's full passes, and the GIL back to the loop sooner."""
    freeze_startup_objects()
    sys.setswitchinterval(WORKER_SWITCH_INTERVAL)


@task_prerun.connect
def connections_checked(sender=None, **kwargs) -> None:
    """As Django does per request, close the thread's connection before a task (CONN_MAX_AGE=0:
    on PostgreSQL it goes back to the process's pool, which checks it before lending it again).
    Every app's tasks run under it, so it is the Celery app's, not one app's."""
    if not getattr(getattr(sender, "request", None), "is_eager", False):  # never inside a caller's transaction
        close_old_connections()
