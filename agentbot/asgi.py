"""The ASGI entry: one uvicorn process serves Django (admin, API, static files through whitenoise)
and the webchat widget's Socket.IO endpoint at /socket.io/.

    uvicorn agentbot.asgi:application --port 8000 [--workers N]

Django runs on AGENTBOT_WEB_THREADS threads of its own (agentbot/serving.py); 0 runs it under
Django's ASGI handler instead. agentbot/wsgi.py still serves Django alone (no webchat) for WSGI
servers.
"""

import os

import django
import socketio

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentbot.settings")
django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402

if settings.AGENTBOT_WEB_THREADS > 0:
    from agentbot.serving import django_in_threads

    django_application = django_in_threads(settings.AGENTBOT_WEB_THREADS)
else:
    from django.core.asgi import get_asgi_application

    django_application = get_asgi_application()

from core.request_limits import BodyLimit  # noqa: E402

# Django's handler reads a whole body before any view sees it: bodies over the limit are refused first.
django_application = BodyLimit(django_application)

from inbound.connectors.webchat.socket import sio  # noqa: E402  (needs the settings loaded above)

application = socketio.ASGIApp(sio, other_asgi_app=django_application, socketio_path="socket.io")

from inbound.connectors.webchat import affinity  # noqa: E402

if affinity.enabled():  # several web processes: a polling session's requests reach its process
    application = affinity.PollingAffinity(application, sio)

from agentbot.startup import freeze_startup_objects  # noqa: E402

freeze_startup_objects()
