"""Thin Celery tasks that call app services."""
