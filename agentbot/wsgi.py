import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentbot.settings")
application = get_wsgi_application()

from agentbot.startup import freeze_startup_objects  # noqa: E402

freeze_startup_objects()
