"""ASGI entry point: the web application (webmail, admin panel, REST API)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
application = get_asgi_application()
