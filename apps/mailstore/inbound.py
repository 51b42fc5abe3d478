"""The inbound pipeline: accept a message durably, then file it.

`accept` is what SMTP calls before it says 250: the Incoming row commits synchronously,
carrying the message itself when it is small, else naming a blob already fsynced. The
kicker then asks a worker to file it. `process` (a Celery task) writes a carried
message's blob, files the message for local users and queues remote recipients for the
relay, deleting the Incoming row in the same transaction, so a crash at any point files
it exactly once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from apps.mailstore import fulltext, groupcommit, plainsql, services
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
    data: bytes | None = None,
) -> int:
    """Record an accepted message durably (group commit), then ask a worker to file it.
    `data` is the message when it travels in the row (see `inline`); otherwise it is in
    the blob store under `blob_key`. When this returns, SMTP may say 250."""
    row = {
        "data": data,
        "blob_key": blob_key,
        "size": size,
        "source": source,
        "mail_from": mail_from,
        "sender_id": sender_id,
        "recipients": list(recipients),
        "envid": envid,
        "ret": ret,
        "auth_results": auth_results or {},
    }
    # Not isolated: a plain insert fails only when the database does.
    incoming_id = groupcommit.run(lambda: plainsql.insert(Incoming, row), isolated=False)
    kicker.add(incoming_id)
    return incoming_id


# Messages up to this size travel in their Incoming row: durable with the row's commit
# (shared by a group), instead of a blob file fsynced, with its directory, before the 250.
INLINE_LIMIT = 128 * 1024


def inline(size: int) -> bool:
    """Whether a message of `size` bytes goes into its Incoming row."""
    return size <= INLINE_LIMIT


# Accepted messages filed per transaction: one task files a run of them, so the filing
# rate does not depend on how fast the broker hands out task messages.
BATCH = 64
# How long the kicker lets a run of accepted messages gather before it publishes their
# task: bench/smtp_load.py filed 150/s without it and kept up with SMTP (205/s) with
# 20 ms. Fuller runs mean fewer filing transactions taking SQLite's write lock from SMTP:
# 50 ms filed 662-698/s against 610-635 with 20 ms; a lone message waits that long.
GATHER_SECONDS = 0.05
# A message that comes after this long without a publish goes at once: gathering pays only
# under load, and a lone message should leave within about 100 ms of its 250.
QUIET_SECONDS = 0.1


class Kicker:
    """Asks the workers to file accepted messages, one task per run of up to BATCH.

    A broker publish costs milliseconds (the embedded filesystem broker writes a file), so
    it happens on a thread of its own: SMTP says 250 as soon as the Incoming row commits,
    and rows that arrive while one publish runs share the next. A row whose task is lost
    (crash, broker down) is still found by the sweep.
    """

    def __init__(self) -> None:
        self._pending: list[int] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._published = 0.0  # time.monotonic() of the last publish
        # A forked server process has no kicker thread until its first message.
        os.register_at_fork(after_in_child=self._forget_thread)

    def add(self, incoming_id: int) -> None:
        with self._wake:
            self._pending.append(incoming_id)
            # Wake the thread only when that changes what it does: the first id ends its
            # idle wait, a full run ends its gathering early. A wake per id cost a context
            # switch per message for nothing.
            if len(self._pending) in (1, BATCH):
                self._wake.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="inbound-kicker")
                self._thread.daemon = True
                self._thread.start()

    def _forget_thread(self) -> None:
        self._thread = None

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
                # Under load, let a run gather for a moment: fewer and fuller tasks file
                # faster (one transaction each). After a quiet spell, publish at once.
                if time.monotonic() - self._published < QUIET_SECONDS:
                    self._wake.wait_for(lambda: len(self._pending) >= BATCH, GATHER_SECONDS)
                ids = sorted(self._pending)
                self._pending.clear()
                self._published = time.monotonic()
            for start in range(0, len(ids), BATCH):
                run = ids[start : start + BATCH]
                publish(run[0], run[-1])


def publish(first_id: int, last_id: int) -> None:
    from workers.tasks import process_incoming

    try:
        process_incoming.delay(first_id, last_id)
    except Exception:  # the broker is down: the sweep will find the rows
        log.warning(
            "could not queue incoming %s-%s; the sweep will", first_id, last_id, exc_info=True
        )


kicker = Kicker()


def process(incoming_id: int, last_id: int | None = None) -> int:
    """File accepted messages from `incoming_id` to `last_id` (without it: up to BATCH
    waiting from `incoming_id` on); returns how many."""
    filed = 0
    while True:
        ids = Incoming.objects.filter(pk__gte=incoming_id).order_by("pk")
        if last_id is not None:
            ids = ids.filter(pk__lte=last_id)
        rows = list(ids[:BATCH])
        filed += _file_batch(rows)
        if last_id is None or len(rows) < BATCH:
            return filed
        incoming_id = rows[-1].pk + 1


def _file_batch(rows: list[Incoming]) -> int:
    """File these in one transaction.

    Messages are parsed before the transaction (it holds SQLite's write lock); each is
    claimed by deleting its Incoming row, so when two workers pick the same message
    only the one whose delete counts files it.
    """
    prepared = []
    for row in rows:
        try:
            prepared.append((row, _message_of(row)))
        except FileNotFoundError:
            log.error("incoming %s: blob %s is missing", row.pk, row.blob_key)
    services.before_write_lock(message for _, message in prepared)
    filed = groupcommit.run(lambda: sum(_file(row, message) for row, message in prepared))
    # After the commit that made them durable: SMTP never waits for the full-text index.
    local = [m for row, m in prepared if any(r.get("user_ids") for r in row.recipients)]
    fulltext.index_parsed((message.blob_key, message.parsed) for message in local)
    return filed


def _message_of(row: Incoming) -> services.NewMessage:
    """The row's message, parsed. One that came in the row goes into the blob store with
    the transaction that files it (`NewMessage.writing`: a StoredBlob row when small)."""
    if row.data is not None:
        return services.NewMessage.writing(bytes(row.data))
    return services.NewMessage.from_blob(row.blob_key, row.size)


def _file(incoming: Incoming, message: services.NewMessage) -> int:
    from apps.relay import services as relay

    # No savepoint: a failure here fails the whole batch (the group commit's unit).
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:  # plain SQL: this runs for every message
            cursor.execute(f"DELETE FROM {Incoming._meta.db_table} WHERE id = %s", [incoming.pk])
            claimed = cursor.rowcount
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
                blob_key=message.blob_key,
                size=incoming.size,
                mail_from=incoming.mail_from,
                recipients=remote,
                sender_id=incoming.sender_id,
                envid=incoming.envid,
                ret=incoming.ret,
            )
        if not user_ids:  # (deliver stored it)
            message.store_blob()  # the relay's rows name the blob: durable with them
    return 1


def left_over() -> tuple[int, int] | None:
    """The first and last Incoming ids waiting now, if any: at start-up, before the
    listeners open, what a crash left between the 250 and the filing (no task published
    yet, or one the killed worker had taken). `process` them at once rather than at the
    sweep.

    Another node (or its worker) may be filing some of these rows at the same moment;
    the claim in `_file` (the row deleted in the filing transaction: a row is deleted by
    one transaction only) lets exactly one of them file each message."""
    span = Incoming.objects.aggregate(first=Min("pk"), last=Max("pk"))
    if span["last"] is None:
        return None
    return span["first"], span["last"]


def overdue(now=None) -> list[int]:
    """Incoming rows that should have been processed by now."""
    cutoff = (now or timezone.now()) - SWEEP_AFTER
    return list(Incoming.objects.filter(received_at__lt=cutoff).values_list("pk", flat=True))


def read_blob(incoming: Incoming) -> bytes:
    return blob_store().read(incoming.blob_key)
