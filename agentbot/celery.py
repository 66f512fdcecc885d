import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from agentbot.startup import freeze_startup_objects

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentbot.settings")

app = Celery("agentbot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect  # the threads pool: tasks run in the worker's own process
@worker_process_init.connect  # the prefork pool: each child process
def startup_objects_frozen(**kwargs) -> None:
    freeze_startup_objects()
