"""`make run`: migrate, make sure there is an admin, a demo API key and a demo webchat, then run web
(uvicorn serving agentbot/asgi.py: Django and the webchat's Socket.IO), workers and beat together
until interrupted, starting again whichever of them dies."""

import json
import os
import secrets
import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from agentbot.supervisor import ChildSpec, Supervisor
from core.models import DEMO_SITE
from core.services import api_key_create, site_get_or_create
from inbound import integrations
from inbound.models import ConnectorType, Integration, KnowledgeEntry
from inbound.origins import origin_normalise

# What the demo webchat can answer; anything else goes to a person.
DEMO_KNOWLEDGE = [
    ("What are your opening hours?", "We are open from 9:00 to 18:00, Monday to Friday.", "hours, open, opening"),
    (
        "How long does shipping take?",
        "Orders leave within one business day and arrive in 2 to 5 days.",
        "shipping, delivery, ship",
    ),
    (
        "How do I return an item?",
        "Return any item within 30 days: write to returns@shop.example with your order number.",
        "return, refund",
    ),
]


def service_commands(*, host: str, port: int) -> list[ChildSpec]:
    """The service's processes: web (uvicorn, AGENTBOT_WEB_WORKERS processes sharing the port) and
    AGENTBOT_WORKER_PROCESSES Celery workers, the first with embedded beat."""
    python = sys.executable
    web = [
        python,
        "-m",
        "uvicorn",
        "agentbot.asgi:application",
        "--host",
        host,
        "--port",
        str(port),
        "--ws-max-size",
        "1048576",
        "--lifespan",
        "off",
        # A deadline for each request's headers (AGENTBOT_WEB_HEADER_TIMEOUT), which uvicorn lacks.
        "--http",
        "agentbot.serving:HeaderTimeoutHttpToolsProtocol",
    ]
    if settings.AGENTBOT_WEB_WORKERS > 1:
        web += ["--workers", str(settings.AGENTBOT_WEB_WORKERS)]
    workers = []
    for n in range(1, settings.AGENTBOT_WORKER_PROCESSES + 1):
        worker = [python, "-m", "celery", "-A", "agentbot", "worker", "--loglevel", "INFO", "--concurrency", "2"]
        if n == 1:
            workers.append(ChildSpec("worker", worker + ["--beat"]))
        else:  # each its own node name (the first keeps Celery's): control commands tell them apart by it
            workers.append(ChildSpec(f"worker{n}", worker + ["-n", f"worker{n}@%h"]))
    return [ChildSpec("web", web), *workers]


def close_database_pool() -> None:
    """Close this process's connections and, on PostgreSQL, its pool's."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        conn.close()
        if hasattr(conn, "close_pool"):
            conn.close_pool()


class Command(BaseCommand):
    help = "Run the whole service: web and webchat on 127.0.0.1:$PORT, Celery workers and beat."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))

    def handle(self, *args, port, host, **options):
        call_command("migrate", interactive=False, verbosity=0)
        credentials = self._credentials()
        chat = self._demo_chat(host, port)
        self._announce(credentials, host, port, chat)
        close_database_pool()  # the children have their own; this process only supervises them
        children = service_commands(host=host, port=port)
        self._supervise(children)

    def _credentials(self) -> dict:
        """Admin login and demo API key, kept in the data directory so each run can print them."""
        path = settings.DATA_DIR / "credentials.json"
        saved = json.loads(path.read_text()) if path.exists() else {}
        User = get_user_model()
        admin = User.objects.filter(username="admin").first()
        if admin is None or not admin.check_password(saved.get("admin_password", "")):
            saved["admin_password"] = secrets.token_urlsafe(12)
            admin = admin or User(username="admin", email="admin@localhost", is_staff=True, is_superuser=True)
            admin.set_password(saved["admin_password"])
            admin.save()
        site, _ = site_get_or_create(site_id=DEMO_SITE, name="Demo site")
        from core.models import ApiKey, hash_api_key

        if not ApiKey.objects.filter(site=site, key_hash=hash_api_key(saved.get("api_key", "-"))).exists():
            _, saved["api_key"] = api_key_create(site=site, name="make run demo key")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(saved))
        path.chmod(0o600)
        return saved

    def _demo_chat(self, host: str, port: int) -> Integration:
        """The demo site's webchat, open to pages of this address, and a few answers it knows."""
        site, _ = site_get_or_create(site_id=DEMO_SITE, name="Demo site")
        local = ["127.0.0.1", "localhost"] if host in ("127.0.0.1", "localhost", "0.0.0.0") else []
        hosts = list(dict.fromkeys([host, *local]))
        wanted = [origin_normalise(f"http://[{name}]:{port}" if ":" in name else f"http://{name}:{port}") for name in hosts]
        chat = Integration.objects.filter(site=site, connector_type=ConnectorType.WEBCHAT, active=True).first()
        if chat is None:
            chat = integrations.integration_create(
                site=site, connector_type=ConnectorType.WEBCHAT, name="Demo webchat", allowed_origins="\n".join(wanted)
            )
        elif not set(wanted) <= set(chat.allowed_origins.splitlines()):
            origins = chat.allowed_origins + "\n" + "\n".join(wanted)
            chat = integrations.integration_update(integration=chat, allowed_origins=origins)
        if not KnowledgeEntry.objects.filter(site=site).exists():
            KnowledgeEntry.objects.bulk_create(
                KnowledgeEntry(site=site, question=q, answer=a, keywords=k) for q, a, k in DEMO_KNOWLEDGE
            )
        return chat

    def _announce(self, credentials: dict, host: str, port: int, chat: Integration) -> None:
        db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        broker = settings.CELERY_BROKER_URL.split("://", 1)[0]
        lines = [
            f"Agentbot Webhooks on http://{host}:{port}  (database: {db}, broker: {broker})",
            f"  admin:    http://{host}:{port}/admin/  user admin  password {credentials['admin_password']}",
            f"  API:      http://{host}:{port}/api/v1/  key {credentials['api_key']}  (site {DEMO_SITE})",
            f"  API docs: http://{host}:{port}/api/v1/docs",
            f"  webchat:  http://{host}:{port}/webchat/demo  (the widget of integration {chat.id}; ask about opening hours)",
        ]
        if settings.AGENTBOT_ALLOW_PRIVATE_URLS:
            lines.append("  private and loopback webhook URLs are allowed (AGENTBOT_ALLOW_PRIVATE_URLS=1)")
        self.stdout.write("\n".join(lines), ending="\n")
        self.stdout.flush()

    def _supervise(self, children: list[ChildSpec]) -> None:
        """Until Ctrl-C or SIGTERM: a child that dies is started again (see agentbot.supervisor)."""
        Supervisor(children).run()
