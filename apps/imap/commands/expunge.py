"""Leaving and cleaning the selected mailbox: EXPUNGE, UID EXPUNGE (RFC 4315 §2.1), CLOSE,
UNSELECT (RFC 3691) and CHECK. RFC 9051 §6.4.1 - §6.4.3."""

from __future__ import annotations

from apps.imap import index
from apps.imap.parser import Command, Expunge
from apps.imap.session import CommandError, Reply, Session
from apps.mailstore import groupcommit, services, uidsets
from mailhost.threads import in_thread


async def expunge(session: Session, command: Command) -> Reply:
    """Remove \\Deleted messages (UID EXPUNGE: only those in the set); the EXPUNGE (or
    VANISHED) responses come from the sync, like anyone else's expunges."""
    args = command.args
    assert isinstance(args, Expunge)
    selected = session.selected
    assert selected is not None and session.user is not None
    if selected.readonly:
        raise CommandError("Mailbox is read-only", code="READ-ONLY")
    ranges = uids = None
    if args.sequence_set is not None:
        pairs = selected.resolve(args.sequence_set, uid=True, saved=session.saved)
        uids = [uid for _, uid in pairs]
        ranges = uidsets.to_ranges(uids)
    await in_thread(_expunge_if_deleted, session.user.pk, selected.folder_id, uids, ranges)
    await session.sync(expunge=True, force=True)
    return Reply()


async def close(session: Session, command: Command) -> Reply:
    """RFC 9051 §6.4.1: expunge silently (unless read-only), then no mailbox is selected."""
    selected = session.selected
    assert selected is not None and session.user is not None
    if not selected.readonly:
        await in_thread(_expunge_if_deleted, session.user.pk, selected.folder_id, None, None)
    session.select(None)
    return Reply()


def _expunge_if_deleted(
    user_id: int, folder_id: int, uids: list[int] | None, ranges: uidsets.UidRanges | None
) -> None:
    """On a worker thread, in one hop: the write transaction only when the index shows a
    message to remove (of `uids`, if given)."""
    if index.has_deleted(folder_id, uids):
        groupcommit.run(lambda: services.expunge(user_id, folder_id, ranges))


async def unselect(session: Session, command: Command) -> Reply:
    """RFC 3691 §2: like CLOSE without the expunge."""
    session.select(None)
    return Reply()
