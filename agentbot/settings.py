"""One settings module, driven by the environment.

With no DATABASE_URL / CELERY_BROKER_URL the service runs on embedded defaults (SQLite and a
filesystem broker under .data/), so `make run` works on a machine with nothing but Python.
"""

import json
import math
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("AGENTBOT_DATA_DIR", BASE_DIR / ".data"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, got {raw!r}") from exc


def env_schedule(name: str) -> list[float] | None:
    """AGENTBOT_RETRY_SCHEDULE: comma-separated seconds, the first entry the immediate attempt."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        steps = [float(part) for part in raw.split(",")]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be comma-separated seconds, got {raw!r}") from exc
    if any(step < 0 for step in steps):
        raise ImproperlyConfigured(f"{name} must not contain negative delays, got {raw!r}")
    return steps


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "insecure-local-development-key-set-DJANGO_SECRET_KEY"
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "*").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "agentbot",
    "core",
    "subscriptions",
    "deliveries",
    "domain",
    "inbound",
    "portal",
]

MIDDLEWARE = [
    "core.request_limits.refuse_control_characters",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.cookies.partitioned_cookies",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.api.errors.DatabaseUnavailableMiddleware",
]

# Messages live in the (database) session, not in a cookie: the admin's show-once secrets (a
# rotated webhook secret, a new API key) never travel to the browser but in the page that shows them.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

ROOT_URLCONF = "agentbot.urls"
WSGI_APPLICATION = "agentbot.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
# On PostgreSQL every process (web, worker, beat) borrows connections from its own psycopg pool
# of at most AGENTBOT_DB_POOL_MAX, for a request or a task, and gives them back when it ends
# (CONN_MAX_AGE=0). Persistent connections under Django's ASGI handler (a new thread, so a new
# connection, per request) stayed open until PostgreSQL's max_connections ran out. A connection
# is checked before it is lent (core/pool.py), so a broken one left by a database restart is
# replaced, not handed out, and a borrower waits at most AGENTBOT_DB_POOL_TIMEOUT seconds for a
# free one before its request fails with a 503 (core/api/errors.py).
AGENTBOT_DB_POOL_MIN = int(env_float("AGENTBOT_DB_POOL_MIN", 1))
AGENTBOT_DB_POOL_MAX = int(env_float("AGENTBOT_DB_POOL_MAX", 8))
AGENTBOT_DB_POOL_TIMEOUT = env_float("AGENTBOT_DB_POOL_TIMEOUT", 5.0)
if AGENTBOT_DB_POOL_MAX < 1 or AGENTBOT_DB_POOL_MIN < 0 or AGENTBOT_DB_POOL_MIN > AGENTBOT_DB_POOL_MAX:
    raise ImproperlyConfigured(
        "AGENTBOT_DB_POOL_MAX must be at least 1 and AGENTBOT_DB_POOL_MIN between 0 and it, "
        f"got {AGENTBOT_DB_POOL_MIN} and {AGENTBOT_DB_POOL_MAX}"
    )
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend with the pool's check done without a round trip (core/postgresql/base.py).
        DATABASES["default"].update(ENGINE="core.postgresql", CONN_HEALTH_CHECKS=False)
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": AGENTBOT_DB_POOL_MIN,
            "max_size": AGENTBOT_DB_POOL_MAX,
            "timeout": AGENTBOT_DB_POOL_TIMEOUT,
            # Idle connections beyond min_size are closed after a minute without a borrower.
            "max_idle": 60.0,
        }
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "agentbot.sqlite3",
            # IMMEDIATE transactions make the delivery claim a real lock on SQLite too.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
# The admin speaks English and Brazilian Portuguese (the browser's Accept-Language chooses).
LANGUAGES = [("en", "English"), ("pt-br", "Português (Brasil)")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve app static files (admin, API docs) straight from the packages when not collected.
WHITENOISE_USE_FINDERS = True

# Requests larger than this are refused before parsing; event data has its own, smaller limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# Files the webhook channel's callers upload (seed 003, v2): kept through Django's storage API in
# the "agentbot_uploads" storage, a local folder unless AGENTBOT_UPLOAD_STORAGE names another
# backend (its OPTIONS as JSON in AGENTBOT_UPLOAD_STORAGE_OPTIONS, e.g. django-storages' S3).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "agentbot_uploads": {
        "BACKEND": os.environ.get("AGENTBOT_UPLOAD_STORAGE", "django.core.files.storage.FileSystemStorage"),
        "OPTIONS": json.loads(os.environ.get("AGENTBOT_UPLOAD_STORAGE_OPTIONS", "") or "null")
        or {"location": str(Path(os.environ.get("AGENTBOT_UPLOAD_DIR", DATA_DIR / "uploads")))},
    },
}
# A file's size limit (bytes), the types a caller may upload, and how long the signed link a
# subscriber gets in message.created stays valid (seconds).
AGENTBOT_UPLOAD_MAX_BYTES = int(env_float("AGENTBOT_UPLOAD_MAX_BYTES", 10 * 1024 * 1024))
AGENTBOT_UPLOAD_TYPES = [
    t.strip().lower()
    for t in os.environ.get(
        "AGENTBOT_UPLOAD_TYPES",
        "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,text/csv,audio/mpeg,audio/ogg,audio/wav,video/mp4",
    ).split(",")
    if t.strip()
]
AGENTBOT_UPLOAD_URL_TTL = env_float("AGENTBOT_UPLOAD_URL_TTL", 7 * 24 * 3600.0)

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["core.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["core.api.auth.HasSiteKey"],
    "DEFAULT_THROTTLE_CLASSES": ["core.api.auth.ApiKeyRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Agentbot Webhooks API",
    "DESCRIPTION": "Subscriptions, events and the delivery log of Agentbot's signed webhooks; the agent's "
    "conversations, tickets and leads; inbound integrations (Chat2Desk) and the knowledge base.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "DeliveryStatusEnum": "deliveries.models.Delivery.Status",
        "ConversationStatusEnum": "core.vocabulary.ConversationStatus",
        "TicketStatusEnum": "core.vocabulary.TicketStatus",
        "WebhookFormatEnum": "subscriptions.models.SUBSCRIBER_FORMATS",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "agentbot.schema.add_error_responses",
        "agentbot.schema.refuse_unknown_request_fields",
        "agentbot.schema.defaults_beside_alternatives",
        "agentbot.schema.patch_bodies_name_a_field",
        "agentbot.schema.read_only_and_write_once_fields",
    ],
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "").strip() or "filesystem://"
if CELERY_BROKER_URL == "filesystem://":
    _queue_dir = DATA_DIR / "broker"
    _queue_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_queue_dir),
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
else:
    # No unacked-message bookkeeping in Redis (two writes and a pipeline per message): the
    # database is the source of truth, so a message a worker took and died with costs only its
    # lease, after which the sweep hands its deliveries (or inbound events) out again.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"ack_emulation": False}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
# No CELERY_DB_REUSE_MAX: after each task Celery closes the task's connection (CONN_MAX_AGE=0),
# which on PostgreSQL gives it back to the process's pool; reuse is the pool's job. On SQLite a
# connection costs a file open.
# Threads, not processes: deliveries_send only hands a batch to the process's delivery engine
# (deliveries/engine/engine.py), which does the waiting on its event loop; a process pool would add a
# pipe hop and a second engine per task for nothing (bench/: ~30% more CPU per delivery, seconds of
# queueing at 200 events/s). The threads pool does not enforce CELERY_TASK_*TIME_LIMIT.
CELERY_WORKER_POOL = os.environ.get("AGENTBOT_WORKER_POOL", "threads")
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Delivery engine ------------------------------------------------------------------------
AGENTBOT_RETRY_SCHEDULE = env_schedule("AGENTBOT_RETRY_SCHEDULE")
AGENTBOT_SWEEP_INTERVAL = env_float("AGENTBOT_SWEEP_INTERVAL", 5.0)
AGENTBOT_HTTP_TIMEOUT = env_float("AGENTBOT_HTTP_TIMEOUT", 15.0)
AGENTBOT_ALLOW_PRIVATE_URLS = env_bool("AGENTBOT_ALLOW_PRIVATE_URLS", False)
# How long enqueued deliveries are owned (the dispatch lease) before the sweep may enqueue them again.
AGENTBOT_DISPATCH_LEASE = env_float("AGENTBOT_DISPATCH_LEASE", 60.0)
AGENTBOT_SEND_BATCH = int(env_float("AGENTBOT_SEND_BATCH", 100))
# A publishing process enqueues at most one message per this many seconds unless a full
# batch has gathered: fewer, fuller messages under load, no wait for a lone publish.
AGENTBOT_HANDOFF_LINGER = env_float("AGENTBOT_HANDOFF_LINGER", 0.005)
# The engine of each worker process (deliveries/engine/engine.py): requests in flight per webhook, rounds
# of queue it keeps behind them (more are handed back for the sweep), jobs held in all, open
# connections, attempts written per statement and how long the recorder waits to fill one.
AGENTBOT_WEBHOOK_CONCURRENCY = int(env_float("AGENTBOT_WEBHOOK_CONCURRENCY", 16))
AGENTBOT_WEBHOOK_QUEUE_ROUNDS = int(env_float("AGENTBOT_WEBHOOK_QUEUE_ROUNDS", 2))
AGENTBOT_ENGINE_MAX_JOBS = int(env_float("AGENTBOT_ENGINE_MAX_JOBS", 2000))
AGENTBOT_HTTP_CONNECTIONS = int(env_float("AGENTBOT_HTTP_CONNECTIONS", 256))
AGENTBOT_RECORD_BATCH = int(env_float("AGENTBOT_RECORD_BATCH", 500))
AGENTBOT_RECORD_LINGER = env_float("AGENTBOT_RECORD_LINGER", 0.005)
AGENTBOT_HTTP_LOOP = os.environ.get("AGENTBOT_HTTP_LOOP", "uvloop")  # or "asyncio"
AGENTBOT_RESPONSE_BODY_CAP = 16 * 1024
AGENTBOT_MAX_EVENT_DATA_BYTES = 256 * 1024
AGENTBOT_SECRET_GRACE = timedelta(hours=24)
# Rendering one event's body for one format (docs/limits.md): longer than AGENTBOT_RENDER_BUDGET
# seconds, the attempt is recorded as failed and the delivery moves on its schedule; a body over
# AGENTBOT_RENDER_MAX_BYTES fails the delivery at once (every attempt would render the same body).
AGENTBOT_RENDER_BUDGET = env_float("AGENTBOT_RENDER_BUDGET", 2.0)
# REST API rate limits (core/ratelimit.py, docs/limits.md): requests a second per API key on
# average and at once (0: no limit), and failed API-key checks per client address. The buckets are
# in Redis (the broker's by default) so every web process shares them.
AGENTBOT_API_RATE = env_float("AGENTBOT_API_RATE", 200.0)
AGENTBOT_API_BURST = int(env_float("AGENTBOT_API_BURST", 1000))
AGENTBOT_API_AUTH_FAILURE_RATE = env_float("AGENTBOT_API_AUTH_FAILURE_RATE", 5.0)
AGENTBOT_API_AUTH_FAILURE_BURST = int(env_float("AGENTBOT_API_AUTH_FAILURE_BURST", 50))
AGENTBOT_RATE_LIMIT_URL = os.environ.get("AGENTBOT_RATE_LIMIT_URL", "").strip() or (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else ""
)
# Subscriber webhooks a site may have (0: no cap): every publish fans out to each (docs/limits.md).
AGENTBOT_MAX_WEBHOOKS_PER_SITE = int(env_float("AGENTBOT_MAX_WEBHOOKS_PER_SITE", 100))
AGENTBOT_RENDER_MAX_BYTES = int(env_float("AGENTBOT_RENDER_MAX_BYTES", 1024 * 1024))

# One JSON object per line (core/logging.py); LOG_FORMAT=plain for reading by eye.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "core.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if os.environ.get("LOG_FORMAT", "json").strip().lower() == "plain" else "json",
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# A web request that publishes must not hang on a dead broker: the sweep covers what is not queued.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BROKER_CONNECTION_TIMEOUT = 2

# Events, deliveries and attempts older than this are deleted by an hourly beat task.
AGENTBOT_RETENTION_DAYS = env_float("AGENTBOT_RETENTION_DAYS", 30.0)
# How long a web process trusts an API key it found valid before looking it up again: a key revoked
# in the admin of another process keeps working at most this long (docs/configuration.md).
AGENTBOT_API_KEY_CACHE_SECONDS = env_float("AGENTBOT_API_KEY_CACHE_SECONDS", 5.0)

# Endpoint health (deliveries/engine/endpoint_health.py).
AGENTBOT_CIRCUIT_THRESHOLD = int(env_float("AGENTBOT_CIRCUIT_THRESHOLD", 10))
AGENTBOT_CIRCUIT_PROBE_INTERVAL = env_float("AGENTBOT_CIRCUIT_PROBE_INTERVAL", 60.0)
AGENTBOT_DISABLE_AFTER_DAYS = env_float("AGENTBOT_DISABLE_AFTER_DAYS", 5.0)

# E-mail to a site's contacts (webhook failing, disabled, recovered: deliveries/services/alerts.py). With no
# EMAIL_HOST the messages are printed (the console backend, as in `make run`).
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = int(env_float("EMAIL_PORT", 587))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", EMAIL_PORT == 587)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Agentbot Webhooks <webhooks@localhost>")

# --- inbound channels (the inbound webhooks document) ------------------------------------------
# The service's public base URL, for the webhook URL the register-webhook helper gives Chat2Desk;
# unset, the URL of the request that asked for the registration.
AGENTBOT_PUBLIC_URL = os.environ.get("AGENTBOT_PUBLIC_URL", "").rstrip("/")
# An OpenAI-compatible chat completions API answers visitors when set (the knowledge base is its
# context); unset, the built-in knowledge-base matcher answers.
AGENTBOT_LLM_BASE_URL = os.environ.get("AGENTBOT_LLM_BASE_URL", "").rstrip("/")
AGENTBOT_LLM_API_KEY = os.environ.get("AGENTBOT_LLM_API_KEY", "")
AGENTBOT_LLM_MODEL = os.environ.get("AGENTBOT_LLM_MODEL", "gpt-4o-mini")
AGENTBOT_LLM_TIMEOUT = env_float("AGENTBOT_LLM_TIMEOUT", 30.0)
# Inbound webhooks are stored before the 200 and processed by a worker; one the worker did not
# finish is enqueued again after this many seconds, at most AGENTBOT_INBOUND_ATTEMPTS times.
# The lease outlasts a model call, so a slow answer is never taken for a dead worker.
AGENTBOT_INBOUND_LEASE = max(env_float("AGENTBOT_INBOUND_LEASE", 120.0), AGENTBOT_LLM_TIMEOUT * 1.5)
AGENTBOT_INBOUND_ATTEMPTS = int(env_float("AGENTBOT_INBOUND_ATTEMPTS", 5))
# Body de-duplication, off by default (0): a Chat2Desk message without a delivery id (message_id,
# event_id, X-Request-Id) whose signed body arrives again within this many seconds is taken for a
# replay and stored once. Its cost: a client who repeats a message ("yes", "yes") inside the
# window is answered once. Status events are never de-duplicated by body.
AGENTBOT_INBOUND_REPLAY_WINDOW = env_float("AGENTBOT_INBOUND_REPLAY_WINDOW", 0.0)
# How often the sweep enqueues stored inbound events no worker finished (whole seconds: see
# CELERY_BEAT_SCHEDULE).
AGENTBOT_INBOUND_SWEEP_INTERVAL = max(1, math.ceil(env_float("AGENTBOT_INBOUND_SWEEP_INTERVAL", 30.0)))
# The webhook channel, v2 synchronous with polling: how long a request waits for the
# agent before it answers with a pollId instead.
AGENTBOT_WEBHOOK_POLL_WAIT = env_float("AGENTBOT_WEBHOOK_POLL_WAIT", 3.0)

# --- the site portal (portal/) ------------------------------------------------------------------
# How long a portal session lasts from the moment it was opened (a link or a member's login).
AGENTBOT_PORTAL_SESSION_SECONDS = env_float("AGENTBOT_PORTAL_SESSION_SECONDS", 4 * 3600)
# A host app on another site (not a subdomain of the same registrable domain) frames the portal
# only if the session and CSRF cookies go with the iframe's requests: DJANGO_COOKIE_SAMESITE=None,
# which browsers accept only with Secure cookies (HTTPS); they are then also Partitioned
# (core/cookies.py), kept by browsers that block third-party cookies. Lax (the default) serves
# same-site hosts.
COOKIE_SAMESITE = os.environ.get("DJANGO_COOKIE_SAMESITE", "Lax").strip() or "Lax"
if COOKIE_SAMESITE not in ("Lax", "Strict", "None"):
    raise ImproperlyConfigured(f"DJANGO_COOKIE_SAMESITE is Lax, Strict or None, got {COOKIE_SAMESITE!r}")
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = COOKIE_SAMESITE
if COOKIE_SAMESITE == "None":
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True

# --- periodic tasks (django-celery-beat) -------------------------------------------------------
# django-celery-beat stores an interval as whole seconds: a fractional one would be saved rounded
# (0.5 s as 0), and every beat started after the first would then sweep in a busy loop.
_SWEEP_EVERY = max(1, math.ceil(AGENTBOT_SWEEP_INTERVAL))
CELERY_BEAT_SCHEDULE = {
    # Due deliveries whose lease ran out go to the workers again.
    "deliveries-sweep": {
        "task": "deliveries.tasks.deliveries_sweep",
        "schedule": _SWEEP_EVERY,
        "options": {"expires": _SWEEP_EVERY},
    },
    # The Leads webhook document: once a day, each lead or appointment of the past day whose delivery failed is offered once more.
    "leads-reoffer-failed": {
        "task": "deliveries.tasks.leads_reoffer_failed",
        "schedule": crontab(minute=0, hour=4),
        "options": {"expires": 3600},
    },
    # Events, deliveries and attempts older than AGENTBOT_RETENTION_DAYS are deleted.
    "retention": {"task": "deliveries.tasks.retention_run", "schedule": 3600.0},
    # Stored inbound events no worker finished go to the workers again.
    "inbound-sweep": {
        "task": "inbound.tasks.inbound_sweep",
        "schedule": AGENTBOT_INBOUND_SWEEP_INTERVAL,
        "options": {"expires": AGENTBOT_INBOUND_SWEEP_INTERVAL},
    },
    # Finished inbound events are deleted after AGENTBOT_RETENTION_DAYS, like deliveries.
    "inbound-retention": {"task": "inbound.tasks.inbound_retention", "schedule": 3600.0},
    # Portal links that can open nothing any more (expired a day ago) are deleted.
    "portal-links-purge": {"task": "portal.tasks.portal_links_purge", "schedule": 3600.0},
}

# --- web server (agentbot/management/commands/serve.py) ------------------------------------------
# uvicorn processes `make run` starts on the one port, and the threads Django runs on in each
# (agentbot/serving.py; 0: Django's ASGI handler). Chosen by bench/api.py (docs/configuration.md, "Serving"). Each
# process has its own database pool and its own webchat connection limits.
# One by default: a webchat long-polling session lives in the process that opened it (docs/configuration.md, "Serving").
AGENTBOT_WEB_WORKERS = int(env_float("AGENTBOT_WEB_WORKERS", 1))
# Seconds a client has to send a request's headers (agentbot/serving.py) and then its body
# (core/request_limits.py) on the web port; 408 and the connection closed past them (0: no limit).
AGENTBOT_WEB_HEADER_TIMEOUT = env_float("AGENTBOT_WEB_HEADER_TIMEOUT", 10.0)
AGENTBOT_WEB_BODY_TIMEOUT = env_float("AGENTBOT_WEB_BODY_TIMEOUT", 30.0)
AGENTBOT_WEB_THREADS = int(env_float("AGENTBOT_WEB_THREADS", 8))
if AGENTBOT_WEB_WORKERS < 1 or AGENTBOT_WEB_THREADS < 0:
    raise ImproperlyConfigured(
        f"AGENTBOT_WEB_WORKERS must be at least 1 and AGENTBOT_WEB_THREADS at least 0, "
        f"got {AGENTBOT_WEB_WORKERS} and {AGENTBOT_WEB_THREADS}"
    )

# Celery worker processes `make run` starts (the first also runs beat). Each runs one delivery
# engine, whose sending is bound by one core (the GIL): two, unless the machine has one core or the
# database is the embedded SQLite, which takes one writer at a time.
_ONE_WRITER = DATABASES["default"]["ENGINE"].endswith("sqlite3")
AGENTBOT_WORKER_PROCESSES = int(env_float("AGENTBOT_WORKER_PROCESSES", 1 if _ONE_WRITER else min(2, os.cpu_count() or 1)))
if AGENTBOT_WORKER_PROCESSES < 1:
    raise ImproperlyConfigured(f"AGENTBOT_WORKER_PROCESSES must be at least 1, got {AGENTBOT_WORKER_PROCESSES}")

# --- webchat (inbound/connectors/webchat/) -------------------------------------------------------
ASGI_APPLICATION = "agentbot.asgi.application"
# A visitor's message is at most this many characters; a connection sends at most
# AGENTBOT_WEBCHAT_RATE messages a second on average, AGENTBOT_WEBCHAT_BURST at once.
AGENTBOT_WEBCHAT_MAX_MESSAGE_CHARS = int(env_float("AGENTBOT_WEBCHAT_MAX_MESSAGE_CHARS", 2000))
AGENTBOT_WEBCHAT_RATE = env_float("AGENTBOT_WEBCHAT_RATE", 1.0)
AGENTBOT_WEBCHAT_BURST = int(env_float("AGENTBOT_WEBCHAT_BURST", 5))
# Open webchat connections one client address may hold in one web process; 0 for no limit (a
# site whose visitors share an address, behind a carrier's NAT, may need more).
AGENTBOT_WEBCHAT_MAX_CONNECTIONS_PER_ADDRESS = int(env_float("AGENTBOT_WEBCHAT_MAX_CONNECTIONS_PER_ADDRESS", 30))
# How long an answer waits for another process that has its event (the sweep's worker).
AGENTBOT_WEBCHAT_ANSWER_WAIT = env_float("AGENTBOT_WEBCHAT_ANSWER_WAIT", 5.0)
# Seconds between looks at an open conversation for what came later (a retried answer, a person's
# reply); 0 turns it off.
AGENTBOT_WEBCHAT_POLL_INTERVAL = env_float("AGENTBOT_WEBCHAT_POLL_INTERVAL", 2.0)
# Threads of the Socket.IO server for database work and answers (each may wait on the model).
AGENTBOT_WEBCHAT_THREADS = int(env_float("AGENTBOT_WEBCHAT_THREADS", 16))
