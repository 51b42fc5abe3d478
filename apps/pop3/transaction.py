"""TRANSACTION state commands: STAT, LIST, UIDL, RETR, TOP, DELE, NOOP, RSET.

RFC 1939 §5 and §7. Message bodies stream from the blob store a chunk at a time, read
in a worker thread and written with back-pressure, so a 50 MB message never sits in
memory whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, BinaryIO

from apps.mailstore.blobs import blob_store
from apps.pop3 import replies
from apps.pop3.maildrop import Entry, Maildrop
from apps.pop3.parser import Command
from apps.pop3.transfer import MessageEncoder
from mailhost.threads import in_thread

if TYPE_CHECKING:
    from apps.pop3.session import Session

READ_CHUNK = 256 * 1024
LISTING_BATCH = 1000  # lines per write in a long LIST or UIDL


def _maildrop(session: Session) -> Maildrop:
    assert session.maildrop is not None  # TRANSACTION state has one
    return session.maildrop


async def _entry(session: Session, number: int) -> Entry | None:
    """The message a command names, or None after the -ERR has been sent."""
    maildrop = _maildrop(session)
    entry = maildrop.get(number)
    if entry is None:
        exists = maildrop.exists(number)
        await session.conn.send(replies.ALREADY_DELETED if exists else replies.NO_SUCH_MESSAGE)
    return entry


async def stat(session: Session, command: Command) -> None:
    count, octets = _maildrop(session).stat()
    await session.conn.send(f"+OK {count} {octets}")


async def list_(session: Session, command: Command) -> None:
    if command.numbers:
        entry = await _entry(session, command.numbers[0])
        if entry is not None:
            await session.conn.send(f"+OK {command.numbers[0]} {entry.size}")
        return
    count, octets = _maildrop(session).stat()
    lines = (f"{n} {entry.size}" for n, entry in _maildrop(session).live())
    await _multiline(session, f"+OK {count} messages ({octets} octets)", lines)


async def uidl(session: Session, command: Command) -> None:
    maildrop = _maildrop(session)
    if command.numbers:
        entry = await _entry(session, command.numbers[0])
        if entry is not None:
            await session.conn.send(f"+OK {command.numbers[0]} {maildrop.unique_id(entry)}")
        return
    lines = (f"{n} {maildrop.unique_id(entry)}" for n, entry in maildrop.live())
    await _multiline(session, replies.OK, lines)


async def _multiline(session: Session, first: str, lines: Iterable[str]) -> None:
    batch = [first]
    for line in lines:
        batch.append(line)
        if len(batch) >= LISTING_BATCH:
            await session.conn.send(*batch)
            batch = []
    await session.conn.send(*batch, ".")


async def retr(session: Session, command: Command) -> None:
    entry = await _entry(session, command.numbers[0])
    if entry is not None:
        await _stream(session, entry, f"+OK {entry.size} octets", MessageEncoder())


async def top(session: Session, command: Command) -> None:
    number, lines = command.numbers
    entry = await _entry(session, number)
    if entry is not None:
        await _stream(session, entry, replies.OK, MessageEncoder(body_lines=lines))


async def _stream(session: Session, entry: Entry, first: str, encoder: MessageEncoder) -> None:
    try:
        blob = await in_thread(_open_blob, entry.blob_key)
    except FileNotFoundError:  # expunged elsewhere and collected since login
        await session.conn.send(replies.MESSAGE_GONE)
        return
    try:
        await session.conn.send(first)
        while not encoder.done:
            chunk = await in_thread(blob.read, READ_CHUNK)
            if not chunk:
                break
            await session.conn.send_bytes(encoder.feed(chunk))
        await session.conn.send_bytes(encoder.finish())
    finally:
        blob.close()


def _open_blob(key: str) -> BinaryIO:
    return blob_store().open(key)


async def dele(session: Session, command: Command) -> None:
    """RFC 1939 §5: only a mark; the message goes at QUIT, in UPDATE state."""
    number = command.numbers[0]
    if await _entry(session, number) is not None:
        _maildrop(session).deleted.add(number)
        await session.conn.send(f"+OK Message {number} deleted")


async def noop(session: Session, command: Command) -> None:
    await session.conn.send(replies.OK)


async def rset(session: Session, command: Command) -> None:
    maildrop = _maildrop(session)
    maildrop.deleted.clear()
    count, octets = maildrop.stat()
    await session.conn.send(f"+OK maildrop has {count} messages ({octets} octets)")
