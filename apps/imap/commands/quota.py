"""QUOTA (RFC 9208): one quota root, "", holding all of a user's mail.

Limits are set by administrators (no QUOTASET), so SETQUOTA is refused. STORAGE is in
units of 1024 octets (RFC 9208 §5.1).
"""

from __future__ import annotations

from apps.imap import query, responses
from apps.imap.parser import Command, GetQuota, GetQuotaRoot
from apps.imap.session import CommandError, Reply, Session
from apps.mailstore import services
from mailhost.threads import in_thread

ROOT = ""


async def _quota_line(session: Session) -> str | None:
    assert session.user is not None
    usage = await in_thread(services.usage, session.user.pk)
    if not usage.quota_bytes:
        return None
    used_kb = (usage.used_bytes + 1023) // 1024
    return f'QUOTA "{ROOT}" (STORAGE {used_kb} {usage.quota_bytes // 1024})'


async def getquotaroot(session: Session, command: Command) -> Reply:
    """RFC 9208 §4.3: QUOTAROOT, then QUOTA for each root (none when unlimited)."""
    args = command.args
    assert isinstance(args, GetQuotaRoot) and session.user is not None
    try:
        await in_thread(query.folder_id_of, session.user.pk, args.mailbox)
    except services.FolderNotFound:
        raise CommandError("No such mailbox", "NONEXISTENT") from None
    line = await _quota_line(session)
    name = responses.mailbox(args.mailbox, utf8=session.utf8).decode()
    session.untagged(f'QUOTAROOT {name} "{ROOT}"' if line else f"QUOTAROOT {name}")
    if line:
        session.untagged(line)
    return Reply()


async def getquota(session: Session, command: Command) -> Reply:
    args = command.args
    assert isinstance(args, GetQuota)
    line = await _quota_line(session) if args.root == ROOT else None
    if line is None:
        raise CommandError("No such quota root", "NONEXISTENT")
    session.untagged(line)
    return Reply()


async def setquota(session: Session, command: Command) -> Reply:
    raise CommandError("Quotas are set by the administrator", "NOPERM")
