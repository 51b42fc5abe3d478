"""Relay queue services: putting mail on the queue, running what is due, and managing the
queue (the `queue` command and the admin panel call these)."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from apps.accounts.addresses import split_address
from apps.relay.models import QueuedMessage

log = logging.getLogger(__name__)
State = QueuedMessage.State
SWEEP_BATCH = 1000  # rows sent to Celery per sweep; the next sweep takes the rest
# Rows one delivery run claims at once and sends over one connection; also how many rows
# of a domain one Celery task is published for.
BATCH_SIZE = 20
KEEP_FINISHED = timedelta(days=7)  # delivered and failed rows stay this long, for `queue list`


_local = threading.local()


class QueueError(Exception):
    """A queue operation that cannot be done; the message says why."""


def enqueue(
    *,
    blob_key: str,
    size: int,
    mail_from: str,
    recipients: Sequence[dict],
    sender_id: int | None = None,
    envid: str = "",
    ret: str = "",
    smtputf8: bool = False,
) -> list[QueuedMessage]:
    """Queue a message: one row per destination domain, due now, each attempted by Celery
    as soon as the surrounding transaction commits."""
    by_domain: dict[str, list[dict]] = defaultdict(list)
    for rcpt in recipients:
        by_domain[split_address(rcpt["address"])[1]].append(
            {
                "address": rcpt["address"],
                "notify": rcpt.get("notify", []),
                "orcpt": rcpt.get("orcpt"),
                "status": "queued",
            }
        )
    # RFC 6531: an address outside ASCII can only travel with SMTPUTF8.
    utf8 = (
        smtputf8 or not all(r["address"].isascii() for r in recipients) or not mail_from.isascii()
    )
    now = timezone.now()
    with transaction.atomic():
        rows = [
            QueuedMessage.objects.create(
                blob_key=blob_key,
                size=size,
                mail_from=mail_from,
                sender_id=sender_id,
                domain=domain,
                recipients=rcpts,
                envid=envid,
                ret=ret,
                smtputf8=utf8,
                next_attempt_at=now,
                dispatched_at=now,
            )
            for domain, rcpts in by_domain.items()
        ]
        _pending_rows().extend((row.domain, row.pk) for row in rows)
        transaction.on_commit(_dispatch_pending)
    return rows


def _pending_rows() -> list[tuple[str, int]]:
    """Rows queued by this thread's transaction and not yet handed to Celery."""
    if not hasattr(_local, "rows"):
        _local.rows = []
    rows: list[tuple[str, int]] = _local.rows
    return rows


def _dispatch_pending() -> None:
    """After the commit: one task per BATCH_SIZE rows of each domain, not one per row. A
    task claims a batch of its domain's due rows, so one per row would mostly find its row
    taken, and a broker publish costs a file and an fsync in the embedded default. The
    first callback of a commit takes every row; rows of a transaction that rolled back
    cost a task that finds nothing."""
    rows, _local.rows = _pending_rows(), []
    by_domain: dict[str, list[int]] = defaultdict(list)
    for domain, pk in rows:
        by_domain[domain].append(pk)
    dispatch([pk for ids in by_domain.values() for pk in sorted(ids)[::BATCH_SIZE]])


def dispatch(ids: Sequence[int], countdown: float = 0) -> None:
    """Ask Celery to attempt these rows. A broker that is down costs a delay: the sweep
    finds the rows."""
    from workers.tasks import relay_deliver

    for queued_id in ids:
        try:
            relay_deliver.apply_async(
                (queued_id,), queue=settings.RELAY_QUEUE or None, countdown=countdown or None
            )
        except Exception:
            log.warning("could not queue relay task %s; the sweep will", queued_id, exc_info=True)
            # Mark it undispatched, so the next sweep sends it rather than waiting as
            # long as it would for a task lost inside the broker.
            QueuedMessage.objects.filter(pk=queued_id).update(dispatched_at=None)


def _due(now: datetime) -> QuerySet[QueuedMessage]:
    """Queued rows that are due and whose Celery task is not (or no longer) on its way."""
    lost = now - timedelta(seconds=settings.RELAY_REDISPATCH_SECONDS)
    return QueuedMessage.objects.filter(state=State.QUEUED, next_attempt_at__lte=now).filter(
        Q(dispatched_at__isnull=True)
        | Q(dispatched_at__lt=F("next_attempt_at"))
        | Q(dispatched_at__lte=lost)
    )


def sweep(now: datetime | None = None) -> int:
    """The periodic safety net: free rows whose worker died mid-attempt, send Celery every
    due row that has no task on its way, forget rows finished long ago. Returns how many
    were sent."""
    now = now or timezone.now()
    reclaimed = QueuedMessage.objects.filter(state=State.SENDING, lease_until__lt=now).update(
        state=State.QUEUED, claim="", lease_until=None, next_attempt_at=now
    )
    if reclaimed:
        log.warning("relay: %s attempts outlived their lease; they run again", reclaimed)
    ids = list(_due(now).order_by("next_attempt_at").values_list("pk", flat=True)[:SWEEP_BATCH])
    if ids:
        QueuedMessage.objects.filter(pk__in=ids).update(dispatched_at=now)
        dispatch(ids)
    QueuedMessage.objects.filter(
        state__in=[State.DELIVERED, State.FAILED], next_attempt_at__lt=now - KEEP_FINISHED
    ).delete()
    return len(ids)


# --- managing the queue (shell command, admin panel) -------------------------------------


def list_messages(state: str | None = None) -> QuerySet[QueuedMessage]:
    rows = QueuedMessage.objects.order_by("next_attempt_at", "pk")
    return rows.filter(state=state) if state else rows


def get(queued_id: int) -> QueuedMessage:
    row = QueuedMessage.objects.filter(pk=queued_id).first()
    if row is None:
        raise QueueError(f"no queued message #{queued_id}")
    return row


def _change(queued_id: int, from_states: Sequence[str], **fields: object) -> QueuedMessage:
    """A conditional UPDATE: only from `from_states`, so a worker mid-attempt is never
    overruled."""
    changed = QueuedMessage.objects.filter(pk=queued_id, state__in=from_states).update(**fields)
    row = get(queued_id)
    if not changed:
        raise QueueError(f"#{queued_id} is {row.state}; only {'/'.join(from_states)} can change")
    return row


def retry_now(queued_id: int) -> QueuedMessage:
    """Attempt at once (a held message is released too)."""
    now = timezone.now()
    row = _change(
        queued_id,
        [State.QUEUED, State.HELD],
        state=State.QUEUED,
        next_attempt_at=now,
        dispatched_at=now,
    )
    transaction.on_commit(lambda: dispatch([queued_id]))
    return row


def hold(queued_id: int) -> QueuedMessage:
    """Keep the message queued but stop attempts until released."""
    return _change(queued_id, [State.QUEUED], state=State.HELD)


def release(queued_id: int) -> QueuedMessage:
    """Let a held message go: it is attempted at once."""
    if get(queued_id).state != State.HELD:
        raise QueueError(f"#{queued_id} is not held")
    return retry_now(queued_id)


def delete(queued_id: int) -> None:
    """Remove the message from the queue without notifying anyone (like `postsuper -d`)."""
    if not QueuedMessage.objects.filter(pk=queued_id).exclude(state=State.SENDING).delete()[0]:
        raise QueueError(f"#{queued_id} does not exist or is being delivered right now")
