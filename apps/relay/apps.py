"""Django app configuration for the outbound relay."""

from django.apps import AppConfig


class RelayConfig(AppConfig):
    name = "apps.relay"
    label = "relay"

    def ready(self) -> None:
        from apps.relay import checks, signals  # noqa: F401  (registers receivers and checks)
