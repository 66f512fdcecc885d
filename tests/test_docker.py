"""No Docker engine runs here, so check what can be checked: the files agree with the project."""

import importlib
import re
from pathlib import Path

import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())


def test_compose_runs_web_worker_beat_postgres_and_redis():
    assert set(COMPOSE["services"]) == {"web", "worker", "beat", "postgres", "redis"}
    app_env = COMPOSE["services"]["web"]["environment"]
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY"} <= set(app_env)
    assert "celery -A agentbot worker" in COMPOSE["services"]["worker"]["command"]
    assert "celery -A agentbot beat" in COMPOSE["services"]["beat"]["command"]
    assert "exec uvicorn agentbot.asgi:application --host 0.0.0.0 --port 8000" in COMPOSE["services"]["web"]["command"]


def test_compose_starts_web_worker_and_beat_again_when_they_die():
    """docs/guarantees.md says so: Docker supervises the containers as `make run` its children."""
    for name in ("web", "worker", "beat"):
        assert COMPOSE["services"][name]["restart"] in ("unless-stopped", "always", "on-failure"), name


def test_dockerfile_copies_what_exists_and_runs_an_importable_app():
    for source in re.findall(r"^COPY (\S+) ", DOCKERFILE, flags=re.M):
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
    module, attribute = re.search(r'"uvicorn", "([\w.]+):(\w+)"', DOCKERFILE).groups()
    assert (module, attribute) == ("agentbot.asgi", "application")  # Django and the webchat's Socket.IO
    assert callable(getattr(importlib.import_module(module), attribute))
    assert importlib.import_module("agentbot").celery_app.main == "agentbot"


def test_dockerfile_copies_the_folders_the_settings_read_at_run_time():
    copied = {ROOT / source for source in re.findall(r"^COPY (\S+) ", DOCKERFILE, flags=re.M)}
    needed = [*settings.LOCALE_PATHS, *(d for t in settings.TEMPLATES for d in t["DIRS"])]
    missing = [str(Path(d).relative_to(ROOT)) for d in needed if Path(d) not in copied]
    assert not missing, f"the image lacks {missing}: the admin's translations or templates would be missing"
