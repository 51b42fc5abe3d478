"""A lost broker message delays mail, never loses it: the sweep files what was accepted,
whether its bytes wait in the blob store or in the row; a restarted node files what was
left at once, racing safely with the workers of live nodes."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.mailstore import inbound
from apps.mailstore.blobs import blob_store
from apps.mailstore.models import Incoming, Message
from workers.tasks import process_incoming, sweep_incoming


@pytest.mark.parametrize("kept_in", ["blob", "row"])
def test_an_accepted_message_whose_task_was_lost_is_filed_by_the_sweep(personas, kept_in):
    bob = personas["bob"]
    raw = b"From: a@remote.test\r\nSubject: lost task\r\n\r\nstill delivered\r\n"
    # What accept() writes, without the broker message (as if Redis had been down): a big
    # message is in the blob store already, a small one travels in its row.
    incoming = Incoming.objects.create(
        blob_key=blob_store().put(raw) if kept_in == "blob" else hashlib.sha256(raw).hexdigest(),
        data=raw if kept_in == "row" else None,
        size=len(raw),
        source="mx",
        recipients=[{"address": bob.address, "user_ids": [bob.id], "external": []}],
    )
    Incoming.objects.filter(pk=incoming.pk).update(
        received_at=timezone.now() - inbound.SWEEP_AFTER - timedelta(seconds=1)
    )
    assert sweep_incoming() == 1
    message = Message.objects.get(folder__user_id=bob.id)
    assert message.subject == "lost task" and message.folder.name == "INBOX"
    assert blob_store().read(message.blob_key) == raw
    assert not Incoming.objects.exists()
    assert sweep_incoming() == 0  # filed exactly once


def test_a_start_up_pass_racing_another_nodes_worker_files_each_message_once(
    live_personas, celery_worker
):
    """What a restarted node files at start-up may be what a live node's worker is filing
    at that moment: each Incoming row is claimed by the transaction that deletes it, so
    either may win a message, never both (RFC 5321 §6.1: delivered, and once)."""
    bob = live_personas["bob"]
    # The worker is up once it has filed one message of its own.
    process_incoming.delay(accepted(bob, "warm-up"))
    wait_until_filed()
    first = accepted(bob, "race 0")
    last = max(accepted(bob, f"race {n}") for n in range(1, 300))
    process_incoming.delay(first, last)  # the other node's worker
    inbound.process(first, last)  # this node's start-up pass (Supervisor)
    wait_until_filed()
    subjects = Counter(
        Message.objects.filter(folder__user_id=bob.id).values_list("subject", flat=True)
    )
    del subjects["warm-up"]
    assert len(subjects) == 300 and set(subjects.values()) == {1}


def accepted(persona, subject: str) -> int:
    """An Incoming row as SMTP's accept writes it (the message in the row); its id."""
    raw = f"From: a@remote.test\r\nSubject: {subject}\r\n\r\nonce\r\n".encode()
    return Incoming.objects.create(
        blob_key=hashlib.sha256(raw).hexdigest(),
        data=raw,
        size=len(raw),
        source="mx",
        recipients=[{"address": persona.address, "user_ids": [persona.id], "external": []}],
    ).pk


def wait_until_filed() -> None:
    deadline = time.monotonic() + 60
    while Incoming.objects.exists():
        assert time.monotonic() < deadline, "the worker filed nothing"
        time.sleep(0.1)
