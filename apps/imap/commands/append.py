"""APPEND with MULTIAPPEND (RFC 3502), APPENDUID (RFC 4315 §3), literal8 (RFC 3516 §4.4)
and the UTF8 form (RFC 6855 §4). RFC 9051 §6.3.12.

Each message's bytes go to the blob store and are parsed on a worker thread; the rows are
written in one transaction, so a MULTIAPPEND lands whole or not at all.
"""

from __future__ import annotations

from apps.imap import responses
from apps.imap.parser import Append, Command
from apps.imap.session import CommandError, Reply, Session
from apps.mailstore import groupcommit, services
from mailhost.threads import in_thread


async def append(session: Session, command: Command) -> Reply:
    args = command.args
    assert isinstance(args, Append)
    assert session.user is not None
    for message in args.messages:
        if message.utf8 and not session.utf8:
            raise CommandError("UTF8 data needs ENABLE UTF8=ACCEPT", status="BAD")  # RFC 6855 §4
        if not message.data:
            raise CommandError("Empty message", "CANNOT")
        if len(message.data) > session.limits.max_literal:
            raise CommandError("Message too big", "TOOBIG")  # RFC 7889 §4
    try:
        uidvalidity, uids = await in_thread(_store, session.user, args)
    except services.FolderNotFound:
        # RFC 9051 §6.3.12: TRYCREATE tells the client CREATE would help. (The blob just
        # written is collected later: checking first cost every APPEND a query.)
        raise CommandError("No such mailbox", "TRYCREATE") from None
    except services.QuotaExceeded:
        raise CommandError("Quota exceeded", "OVERQUOTA") from None  # RFC 9208 §4.3
    return Reply("OK", "APPEND completed", f"APPENDUID {uidvalidity} {responses.uid_set(uids)}")


def _store(user, args: Append) -> tuple[int, list[int]]:
    """Blobs parsed here, in parallel with other sessions, and written while that goes
    on; the rows through the group committer (which waits for the blobs)."""
    batch = [
        (
            services.NewMessage.writing(message.data),
            [f for f in message.flags if f != "\\Recent"],  # RFC 9051 §2.3.2: not settable
            message.internal_date,
        )
        for message in args.messages
    ]
    services.before_write_lock(message for message, _, _ in batch)
    return groupcommit.run(lambda: services.append_many(user, args.mailbox, batch))
