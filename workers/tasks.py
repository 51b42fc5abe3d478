"""Celery tasks: each one a thin call into an app service."""

from __future__ import annotations

from celery import shared_task

from apps.mailstore import maintenance


@shared_task(name="mailstore.collect_blobs")
def collect_blobs() -> int:
    """Remove blobs no message refers to any more; returns how many went."""
    return maintenance.collect_unreferenced_blobs()
