"""ASGI entry point: the web application (webmail, admin panel, REST API), behind the
ACME HTTP-01 challenge responder and our MTA-STS policy."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
django_application = get_asgi_application()

# Imported once Django is set up (it reads settings); the entry point puts the parts together.
from apps.mailserver.acme_http import ChallengeResponder  # noqa: E402
from apps.mailserver.mta_sts_http import PolicyResponder  # noqa: E402

application = ChallengeResponder(PolicyResponder(django_application))
