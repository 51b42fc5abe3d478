"""Putting test messages on the relay queue and reading what came back."""

from __future__ import annotations

import email
import time
from collections.abc import Sequence
from email.message import Message

from apps.mailstore.blobs import blob_store
from apps.relay import services
from apps.relay.models import QueuedMessage
from tests.conftest import Persona
from tests.mailclient import raw_message


def queue(
    sender: Persona | None,
    recipients: Sequence[str],
    raw: bytes | None = None,
    *,
    mail_from: str | None = None,
    notify: Sequence[str] = (),
    **options: str,
) -> list[QueuedMessage]:
    """What submission hands the relay: the message in the blob store and one row per domain."""
    address = sender.address if sender else (mail_from or "")
    raw = raw or raw_message(address or "someone@remote.test", recipients[0])
    return services.enqueue(
        blob_key=blob_store().put(raw),
        size=len(raw),
        mail_from=address if mail_from is None else mail_from,
        recipients=[{"address": a, "notify": list(notify)} for a in recipients],
        sender_id=sender.id if sender else None,
        **options,
    )


def reload(row: QueuedMessage) -> QueuedMessage:
    return QueuedMessage.objects.get(pk=row.pk)


def parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw)


def stored_raw(message) -> bytes:
    return blob_store().read(message.blob_key)


def report_parts(raw: bytes) -> tuple[Message, list[Message], Message]:
    """(human part, delivery-status blocks, returned part) of a DSN."""
    report = parse(raw)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    human, status, returned = report.get_payload()
    assert status.get_content_type() == "message/delivery-status"
    return human, status.get_payload(), returned


def wait_until(condition, timeout: float = 30, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)
