"""A lost broker message delays mail, never loses it: the sweep files what was accepted."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.mailstore import inbound
from apps.mailstore.blobs import blob_store
from apps.mailstore.models import Incoming, Message
from workers.tasks import sweep_incoming


def test_an_accepted_message_whose_task_was_lost_is_filed_by_the_sweep(personas):
    bob = personas["bob"]
    raw = b"From: a@remote.test\r\nSubject: lost task\r\n\r\nstill delivered\r\n"
    # What accept() writes, without the broker message (as if Redis had been down).
    incoming = Incoming.objects.create(
        blob_key=blob_store().put(raw),
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
    assert not Incoming.objects.exists()
    assert sweep_incoming() == 0  # filed exactly once
