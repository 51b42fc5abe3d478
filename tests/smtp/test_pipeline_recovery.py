"""A lost broker message delays mail, never loses it: the sweep files what was accepted,
whether its bytes wait in the blob store or in the row."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.mailstore import inbound
from apps.mailstore.blobs import blob_store
from apps.mailstore.models import Incoming, Message
from workers.tasks import sweep_incoming


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
