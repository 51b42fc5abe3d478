"""Django app configuration for the mail store."""

from django.apps import AppConfig


class MailstoreConfig(AppConfig):
    name = "apps.mailstore"
    label = "mailstore"

    def ready(self) -> None:
        from apps.mailstore import signals  # noqa: F401  (connects the provisioning hook)
