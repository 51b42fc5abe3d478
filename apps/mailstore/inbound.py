"""The inbound pipeline: accept a message durably, then file it.

`accept` is what SMTP calls before it says 250: the blob is already fsynced, and the
Incoming row commits synchronously. `process` (a Celery task) files the message for local
users and queues remote recipients for the relay, deleting the Incoming row in the same
transaction, so a crash at any point files it exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.mailstore import fulltext, groupcommit, services
from apps.mailstore.blobs import blob_store
from apps.mailstore.models import Incoming

log = logging.getLogger(__name__)
# An Incoming row older than this was missed by its Celery message (broker down, worker
# killed); the sweep runs it again.
SWEEP_AFTER = timedelta(seconds=30)


def accept(
    *,
    blob_key: str,
    size: int,
    source: str,
    recipients: Sequence[dict],
    mail_from: str = "",
    sender_id: int | None = None,
    envid: str = "",
    ret: str = "",
    auth_results: dict | None = None,
) -> Incoming:
    """Record an accepted message durably (group commit), then ask a worker to file it.
    When this returns, SMTP may say 250."""
    incoming = groupcommit.run(
        lambda: Incoming.objects.create(
            blob_key=blob_key,
            size=size,
            source=source,
            mail_from=mail_from,
            sender_id=sender_id,
            recipients=list(recipients),
            envid=envid,
            ret=ret,
            auth_results=auth_results or {},
        )
    )
    # Scheduled by the caller's thread, not in the commit: a broker publish costs about
    # a millisecond, and the group's leader must not make everyone wait for all of them.
    _schedule(incoming.pk)
    return incoming


def _schedule(incoming_id: int) -> None:
    from workers.tasks import process_incoming

    try:
        process_incoming.delay(incoming_id)
    except Exception:  # the broker is down: the sweep will find the row
        log.warning("could not queue incoming %s; the sweep will", incoming_id, exc_info=True)


# Accepted messages filed per transaction: one task drains whatever is waiting, so the
# filing rate does not depend on how fast the broker hands out task messages.
BATCH = 64


def process(incoming_id: int, limit: int = BATCH) -> int:
    """File this accepted message and others waiting after it; returns how many.

    Messages are parsed before the transaction (it holds SQLite's write lock); each is
    claimed by deleting its Incoming row, so when two workers pick the same message
    only the one whose delete counts files it.
    """
    rows = list(Incoming.objects.filter(pk__gte=incoming_id).order_by("pk")[:limit])
    prepared = []
    for row in rows:
        try:
            prepared.append((row, services.NewMessage.from_blob(row.blob_key, row.size)))
        except FileNotFoundError:
            log.error("incoming %s: blob %s is missing", row.pk, row.blob_key)
    filed = groupcommit.run(lambda: sum(_file(row, message) for row, message in prepared))
    # After the commit that made them durable: SMTP never waits for the full-text index.
    local = [m for row, m in prepared if any(r.get("user_ids") for r in row.recipients)]
    fulltext.index_parsed((message.blob_key, message.parsed) for message in local)
    return filed


def _file(incoming: Incoming, message: services.NewMessage) -> int:
    from apps.relay import services as relay

    with transaction.atomic():
        claimed, _ = Incoming.objects.filter(pk=incoming.pk).delete()
        if not claimed:
            return 0
        user_ids = [u for rcpt in incoming.recipients for u in rcpt.get("user_ids", [])]
        if user_ids:
            # Accepted mail is always filed: the quota was checked at RCPT time, and a
            # message already acknowledged must not be lost to a race (RFC 5321 §6.1).
            services.deliver(message, user_ids, enforce_quota=False)
        external = [r for r in incoming.recipients if r.get("external")]
        remote = [{**r, "address": a} for r in external for a in r["external"]]
        if remote:
            relay.enqueue(
                blob_key=incoming.blob_key,
                size=incoming.size,
                mail_from=incoming.mail_from,
                recipients=remote,
                sender_id=incoming.sender_id,
                envid=incoming.envid,
                ret=incoming.ret,
            )
    return 1


def overdue(now=None) -> list[int]:
    """Incoming rows that should have been processed by now."""
    cutoff = (now or timezone.now()) - SWEEP_AFTER
    return list(Incoming.objects.filter(received_at__lt=cutoff).values_list("pk", flat=True))


def read_blob(incoming: Incoming) -> bytes:
    return blob_store().read(incoming.blob_key)
