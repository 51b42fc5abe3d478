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
from workers.tasks import sweep_incoming


def queue(
    sender: Persona | None,
    recipients: Sequence[str],
    raw: bytes | None = None,
    *,
    mail_from: str | None = None,
    notify: Sequence[str] = (),
    envid: str = "",
    ret: str = "",
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
        envid=envid,
        ret=ret,
    )


def reload(row: QueuedMessage) -> QueuedMessage:
    return QueuedMessage.objects.get(pk=row.pk)


def parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw)


def parts(message: Message) -> list[Message]:
    """The parts of a multipart (or of a message/delivery-status, one per field block)."""
    payload = message.get_payload()
    assert isinstance(payload, list), payload
    return [_message(part) for part in payload]


def _message(part: object) -> Message:
    """`part`, which must be a parsed message rather than a string payload."""
    assert isinstance(part, Message), part
    return part


def attached(part: Message) -> Message:
    """The message a message/rfc822 part carries."""
    return _message(part.get_payload(0))


def decoded(part: Message) -> bytes:
    """The body of a leaf part, its Content-Transfer-Encoding undone."""
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes), payload
    return payload


def stored_raw(message) -> bytes:
    return blob_store().read(message.blob_key)


def report_parts(raw: bytes) -> tuple[Message, list[Message], Message]:
    """(human part, delivery-status blocks, returned part) of a DSN."""
    report = parse(raw)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    human, status, returned = parts(report)
    assert status.get_content_type() == "message/delivery-status"
    return human, parts(status), returned


def wait_until(condition, timeout: float = 60, step: float = 0.1, *, sweeping: bool = False):
    """`condition()` once it is true (or when the time is up). With `sweeping`, this process
    plays Celery beat meanwhile: once a second the sweeps run what lost its task (on a
    shared Redis, another test run's worker may have taken it)."""
    deadline = time.monotonic() + timeout
    swept = time.monotonic()
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        if sweeping and time.monotonic() - swept >= 1:
            sweep_incoming()
            services.sweep()
            swept = time.monotonic()
        time.sleep(step)


def inbox(user_id: int, count: int, timeout: float = 60) -> list:
    """The user's INBOX once it holds `count` messages (or when the time is up)."""
    from apps.mailstore.models import Message

    messages = Message.objects.filter(folder__user_id=user_id, folder__name="INBOX")
    wait_until(lambda: messages.count() >= count, timeout, sweeping=True)
    return list(messages.order_by("uid"))


def rows_in(state: str, count: int, timeout: float = 60) -> list[QueuedMessage]:
    """The queue rows in `state` once there are `count` of them (the worker takes a moment)."""
    rows = QueuedMessage.objects.filter(state=state)
    wait_until(lambda: rows.count() >= count, timeout, sweeping=True)
    return list(rows)


def received(sink, count: int, timeout: float = 60) -> list:
    """What the sink received, once it holds `count` transactions."""
    wait_until(lambda: len(sink.messages()) >= count, timeout, sweeping=True)
    return sink.messages()
