"""Django app configuration for pop3; ready() registers its two listeners."""

from django.apps import AppConfig


class Pop3Config(AppConfig):
    name = "apps.pop3"
    label = "pop3"

    def ready(self) -> None:
        from apps.mailserver import listeners
        from apps.pop3.listener import start

        for name in ("pop3", "pop3s"):
            listeners.register(name, start)
