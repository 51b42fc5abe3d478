"""Mailhost project package: settings, URLs, ASGI and the Celery application."""

from mailhost.celery import app as celery_app

__all__ = ["celery_app"]
