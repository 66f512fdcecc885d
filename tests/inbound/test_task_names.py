"""The inbound tasks are named after their module (inbound.tasks.*); a message queued under the
names they had (agentbot.tasks.*) still runs the same task."""

import pytest
from django.test import Client

from agentbot.celery import app as celery_app
from inbound import services, tasks
from inbound.models import InboundEvent
from tests.inbound.conftest import post_webhook
from tests.inbound.test_chat2desk_e2e import message, settled


def test_each_inbound_task_has_its_modules_name_and_answers_to_its_earlier_one():
    for task in (tasks.inbound_process, tasks.inbound_sweep, tasks.inbound_retention):
        assert task.name == f"inbound.tasks.{task.__name__}"
        earlier = celery_app.tasks[f"agentbot.tasks.{task.__name__}"]
        assert earlier.run is task.run and earlier.ignore_result
    assert services.INBOUND_PROCESS_TASK == tasks.inbound_process.name


@pytest.mark.django_db(transaction=True)
def test_a_message_queued_under_the_earlier_task_name_is_run_by_a_worker(integration, knowledge, chat2desk, workers, monkeypatch):
    # Stored but not queued: only the message sent below under the earlier name can process it.
    monkeypatch.setattr(services, "inbound_enqueue", lambda ids: None)
    assert post_webhook(Client(), integration, message("4242", "When are you open?")).status_code == 200
    event = InboundEvent.objects.get(integration=integration)
    assert event.status in services.PENDING
    workers.start(beat=False)  # no sweep: it would process the event whatever the message's name

    celery_app.send_task("agentbot.tasks.inbound_process", args=[event.id])

    assert settled(event).status == "processed"
