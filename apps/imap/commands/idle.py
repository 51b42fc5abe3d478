"""IDLE (RFC 2177, RFC 9051 §6.3.13): push what changes until the client says DONE.

The session's change subscription wakes it; each wake-up for the selected folder is a
sync with expunges allowed, flushed at once, so a new delivery shows within a second.
"""

from __future__ import annotations

import asyncio
import contextlib

from apps.imap.parser import Command
from apps.imap.reader import LineTooLong, read_line
from apps.imap.session import CommandError, Reply, Session

CONTINUATION = b"+ idling\r\n"
# RFC 2177 §3: the only thing a client may send during IDLE.
DONE = b"DONE"
# The DONE line is short; anything long is garbage.
MAX_DONE_LINE = 1024


async def idle(session: Session, command: Command) -> Reply:
    session.write(CONTINUATION)
    await session.sync(expunge=True)
    await session.flush()
    done = asyncio.ensure_future(read_line(session.conn.reader, max_line=MAX_DONE_LINE))
    try:
        await _wait(session, done)
        line = done.result()
    except LineTooLong:
        raise CommandError("Expected DONE", status="BAD") from None
    finally:
        done.cancel()
    if line.strip().upper() != DONE:
        raise CommandError("Expected DONE", status="BAD")
    return Reply()


async def _wait(session: Session, done: asyncio.Future) -> None:
    """Until DONE arrives (or the autologout timer, RFC 9051 §5.4, runs out)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + session.limits.idle_timeout
    subscription = session.subscription
    assert subscription is not None
    while not done.done():
        change = asyncio.ensure_future(subscription.get())
        try:
            await asyncio.wait(
                {done, change},
                timeout=deadline - loop.time(),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            change.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await change
        if change.done() and not change.cancelled():
            selected = session.selected
            if selected is not None and change.result().folder_id == selected.folder_id:
                session.dirty = True
            await session.sync(expunge=True)
            await session.flush()
        elif not done.done():
            await session.bye("Autologout; idle for too long")
            raise TimeoutError
