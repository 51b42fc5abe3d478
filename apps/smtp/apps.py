"""Django app configuration for SMTP; ready() registers its three listeners."""

from django.apps import AppConfig


class SmtpConfig(AppConfig):
    name = "apps.smtp"
    label = "smtp"

    def ready(self) -> None:
        from apps.mailserver import listeners
        from apps.smtp.listener import start

        for name in ("smtp", "submission", "submissions"):
            listeners.register(name, start)
