"""COPY and MOVE (RFC 9051 §6.4.7, §6.4.8; RFC 6851) with COPYUID (RFC 4315 §3).

Both go through `services.file_messages`, which also tells the spam trainer when
messages enter or leave Junk.
"""

from __future__ import annotations

from apps.imap import responses
from apps.imap.parser import Command, Copy, Move
from apps.imap.session import CommandError, Reply, Session
from apps.mailstore import groupcommit, services, uidsets
from mailhost.threads import in_thread


async def copy(session: Session, command: Command) -> Reply:
    args = command.args
    assert isinstance(args, Copy | Move)
    move = isinstance(args, Move)
    selected = session.selected
    assert selected is not None and session.user is not None
    if move and selected.readonly:
        raise CommandError("Mailbox is read-only", "READ-ONLY")
    pairs = selected.resolve(args.sequence_set, uid=args.uid, saved=session.saved)
    try:
        uidvalidity, sources, copies = await in_thread(
            groupcommit.call,
            services.file_messages,
            session.user.pk,
            selected.folder_id,
            uidsets.to_ranges(u for _, u in pairs),
            args.mailbox,
            move=move,
        )
    except services.FolderNotFound:
        raise CommandError("No such mailbox", "TRYCREATE") from None
    except services.QuotaExceeded:
        raise CommandError("Quota exceeded", "OVERQUOTA") from None
    if not sources:
        return Reply()
    code = f"COPYUID {uidvalidity} {responses.uid_set(sources)} {responses.uid_set(copies)}"
    if not move:
        return Reply("OK", "COPY completed", code)
    # RFC 6851 §4.3: COPYUID in an untagged OK before the expunges.
    session.untagged(f"OK [{code}] Moved")
    await session.sync(expunge=True, force=True)
    return Reply()
