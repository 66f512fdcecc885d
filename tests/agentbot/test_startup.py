"""Long-running processes leave their start-up objects out of the collector's full passes."""

import gc
import sys

from celery.signals import worker_process_init, worker_ready

from agentbot.celery import WORKER_SWITCH_INTERVAL, worker_process_prepared
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
        assert worker_process_prepared in receivers


def test_a_worker_process_gives_its_event_loop_the_gil_back_sooner_than_pythons_default():
    default = sys.getswitchinterval()
    try:
        worker_process_prepared()
        assert sys.getswitchinterval() == WORKER_SWITCH_INTERVAL < default
    finally:
        sys.setswitchinterval(default)
        gc.unfreeze()
