"""Django app configuration for the mail server process; ready() registers its checks and
the TLS-ALPN-01 listener."""

from django.apps import AppConfig


class MailserverConfig(AppConfig):
    name = "apps.mailserver"
    label = "mailserver"

    def ready(self) -> None:
        from apps.mailserver import (
            checks,  # noqa: F401  (registers system checks)
            listeners,
            tls_alpn,
        )

        listeners.register("tls_alpn", tls_alpn.start)
