"""`manage.py serve` (make run): which processes it starts."""

import os
import subprocess
import sys

from agentbot.management.commands.serve import service_commands
from tests.support.worker import ROOT


def workers(specs) -> list:
    return [spec for spec in specs if "celery" in spec.argv]


def test_it_starts_agentbot_worker_processes_workers_with_one_beat_and_distinct_names(settings):
    settings.AGENTBOT_WORKER_PROCESSES = 3
    started = workers(service_commands(host="127.0.0.1", port=8000))
    assert [spec.name for spec in started] == ["worker", "worker2", "worker3"]
    assert [spec.argv.count("--beat") for spec in started] == [1, 0, 0]
    names = [spec.argv[spec.argv.index("-n") + 1] if "-n" in spec.argv else "celery@%h" for spec in started]
    assert len(set(names)) == 3, names
    settings.AGENTBOT_WORKER_PROCESSES = 1
    (alone,) = workers(service_commands(host="127.0.0.1", port=8000))
    assert "--beat" in alone.argv and "-n" not in alone.argv


def default_processes(**env) -> int:
    code = "import django; django.setup(); from django.conf import settings; print(settings.AGENTBOT_WORKER_PROCESSES)"
    environment = {"DJANGO_SETTINGS_MODULE": "agentbot.settings", "PATH": "/usr/bin:/bin", **env}
    return int(
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, check=True).stdout
    )


def test_two_workers_by_default_but_one_on_the_embedded_sqlite_which_takes_one_writer_at_a_time(tmp_path):
    # Two, or one on a machine of one core.
    assert default_processes(DATABASE_URL="postgres://postgres@127.0.0.1:5432/agentbot") == min(2, os.cpu_count() or 1)
    assert default_processes(AGENTBOT_DATA_DIR=str(tmp_path)) == 1
    assert default_processes(DATABASE_URL="postgres://postgres@127.0.0.1:5432/agentbot", AGENTBOT_WORKER_PROCESSES="3") == 3
