"""Long-running processes leave their start-up objects out of the collector's full passes."""

import gc

from celery.signals import worker_process_init, worker_ready

from agentbot.celery import startup_objects_frozen
from agentbot.startup import freeze_startup_objects


def test_freezing_moves_what_exists_now_out_of_the_collected_generations():
    before = gc.get_freeze_count()
    kept = [object() for _ in range(1000)]
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() >= before + len(kept)
    finally:
        gc.unfreeze()


def test_every_kind_of_worker_process_freezes_once_it_has_started():
    # The threads pool runs tasks in the worker's own process (worker_ready); prefork in children.
    for signal in (worker_ready, worker_process_init):
        receivers = [ref() for _, ref in signal.receivers]
        assert startup_objects_frozen in receivers
