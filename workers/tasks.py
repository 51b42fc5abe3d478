"""Celery tasks: each one a thin call into an app service."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from apps.imap import index as imap_index
from apps.mailstore import fulltext, inbound, maintenance

log = logging.getLogger(__name__)
# Folders changed within this long are looked at by save_imap_indexes (twice its period).
INDEX_LOOKBACK = timedelta(seconds=600)


@shared_task(name="mailstore.collect_blobs")
def collect_blobs() -> int:
    """Remove blobs no message refers to any more; returns how many went."""
    return maintenance.collect_unreferenced_blobs()


@shared_task(name="mailstore.index_folders")
def index_folders() -> int:
    """Bring the full-text index up to date with folders that got mail other than through
    the inbound pipeline (IMAP APPEND, say), and drop rows nothing refers to any more."""
    indexed = sum(fulltext.catch_up(folder_id) for folder_id in fulltext.folders_behind())
    fulltext.sweep()
    return indexed


@shared_task(name="imap.save_indexes")
def save_imap_indexes() -> int:
    """Write the IMAP index files of big folders that changed lately other than by the
    inbound pipeline (which does it as it files), so their first SELECT reads a file."""
    return imap_index.save_behind(timezone.now() - INDEX_LOOKBACK)


@shared_task(name="inbound.process", acks_late=True)
def process_incoming(incoming_id: int, last_id: int | None = None) -> int:
    """File accepted messages for their local recipients and queue the remote ones; then
    bring the IMAP index files of the big folders they went to up to date."""
    started = timezone.now()
    filed = inbound.process(incoming_id, last_id)
    try:
        imap_index.save_behind(started)
    except Exception:  # a cache: failing to write one must not fail the filing task
        log.warning("could not write IMAP index files", exc_info=True)
    return filed


@shared_task(name="inbound.sweep")
def sweep_incoming() -> int:
    """Run accepted messages whose task was lost (broker down, worker killed)."""
    due = inbound.overdue()
    if due:
        inbound.process(min(due), max(due))
    return len(due)


@shared_task(name="relay.deliver", acks_late=True)
def relay_deliver(queued_id: int) -> int:
    """Attempt a queued outbound message (and others due for its domain); returns how many."""
    from apps.relay import delivery

    return delivery.run(queued_id)


@shared_task(name="relay.sweep")
def relay_sweep() -> int:
    """Run queued outbound messages that are due and have no task on its way."""
    from apps.relay import pool, services

    pool.shared_pool().prune()
    return services.sweep()


@shared_task(name="relay.tls_reports")
def tls_reports() -> int:
    """Mail yesterday's TLS reports (RFC 8460) to the domains that ask for them."""
    from django.conf import settings

    from apps.mailauth.dns import resolver_from_settings
    from apps.relay import tlsrpt

    yesterday = timezone.now().date() - timedelta(days=1)
    return tlsrpt.send_reports(yesterday, resolver_from_settings(settings.DNS_SERVERS))


@shared_task(name="mailserver.renew_certificates")
def renew_certificates() -> str:
    """Order the server's certificate from the ACME CA when it is due (one node at a time)."""
    from apps.mailserver import renewal

    return renewal.renew()
