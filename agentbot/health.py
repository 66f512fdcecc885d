"""Liveness and readiness probes."""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from agentbot.celery import app as celery_app


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return None
    except Exception as exc:  # any failure means not ready; say which
        return type(exc).__name__


def _check_broker() -> str | None:
    try:
        with celery_app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return None
    except Exception as exc:
        return type(exc).__name__


def readyz(request):
    checks = {"database": _check_database(), "broker": _check_broker()}
    body = {name: ("ok" if error is None else f"unavailable: {error}") for name, error in checks.items()}
    ready = all(error is None for error in checks.values())
    body["status"] = "ready" if ready else "not ready"
    return JsonResponse(body, status=200 if ready else 503)
