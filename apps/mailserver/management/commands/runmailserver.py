"""`manage.py runmailserver`: run every listener, the web app and the embedded worker."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.mailserver import processes
from apps.mailserver.supervisor import Supervisor


class Command(BaseCommand):
    help = "Run the SMTP, IMAP, POP3 and web listeners (and, embedded, the Celery worker)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="do not start a Celery worker (scaled out: run `celery worker` separately)",
        )

    def handle(self, *args, **options) -> None:
        run_worker = settings.EMBEDDED and not options["no_worker"]
        supervisor = Supervisor(dict(settings.LISTENERS), run_worker=run_worker)
        processes.serve(supervisor, settings.SERVER_PROCESSES)
