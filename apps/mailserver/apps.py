"""Django app configuration for the mail server process."""

from django.apps import AppConfig


class MailserverConfig(AppConfig):
    name = "apps.mailserver"
    label = "mailserver"

    def ready(self) -> None:
        from apps.mailserver import checks  # noqa: F401  (registers system checks)
