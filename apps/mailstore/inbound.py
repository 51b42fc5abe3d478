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

from apps.mailstore import services
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
    """Record an accepted message; after this returns, SMTP may say 250."""
    incoming = Incoming.objects.create(
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
    transaction.on_commit(lambda: _schedule(incoming.pk))
    return incoming


def _schedule(incoming_id: int) -> None:
    from workers.tasks import process_incoming

    try:
        process_incoming.delay(incoming_id)
    except Exception:  # the broker is down: the sweep will find the row
        log.warning("could not queue incoming %s; the sweep will", incoming_id, exc_info=True)


def process(incoming_id: int) -> bool:
    """File one accepted message. Returns False when another worker already did."""
    from apps.relay import services as relay

    with transaction.atomic():
        incoming = Incoming.objects.select_for_update().filter(pk=incoming_id).first()
        if incoming is None:
            return False
        message = services.NewMessage.from_blob(incoming.blob_key, incoming.size)
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
        incoming.delete()
    return True


def overdue(now=None) -> list[int]:
    """Incoming rows that should have been processed by now."""
    cutoff = (now or timezone.now()) - SWEEP_AFTER
    return list(Incoming.objects.filter(received_at__lt=cutoff).values_list("pk", flat=True))


def read_blob(incoming: Incoming) -> bytes:
    return blob_store().read(incoming.blob_key)
