"""Django app configuration for imap; ready() registers its two listeners."""

from django.apps import AppConfig


class ImapConfig(AppConfig):
    name = "apps.imap"
    label = "imap"

    def ready(self) -> None:
        from apps.imap.listener import start
        from apps.mailserver import listeners

        for name in ("imap", "imaps"):
            listeners.register(name, start)
