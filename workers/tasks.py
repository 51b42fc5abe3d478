"""Celery tasks: each one a thin call into an app service."""

from __future__ import annotations

from celery import shared_task

from apps.mailstore import inbound, maintenance


@shared_task(name="mailstore.collect_blobs")
def collect_blobs() -> int:
    """Remove blobs no message refers to any more; returns how many went."""
    return maintenance.collect_unreferenced_blobs()


@shared_task(name="inbound.process", acks_late=True)
def process_incoming(incoming_id: int) -> bool:
    """File one accepted message for its local recipients and queue the remote ones."""
    return inbound.process(incoming_id)


@shared_task(name="inbound.sweep")
def sweep_incoming() -> int:
    """Run accepted messages whose task was lost (broker down, worker killed)."""
    due = inbound.overdue()
    for incoming_id in due:
        inbound.process(incoming_id)
    return len(due)
