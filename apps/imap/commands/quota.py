"""QUOTA (RFC 9208): one quota root, "", holding all of a user's mail.

Limits are set by administrators (no QUOTASET), so SETQUOTA is refused. STORAGE is in
units of 1024 octets (RFC 9208 §5.1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.imap import query, responses
from apps.imap.parser import Command, GetQuota, GetQuotaRoot
from apps.mailstore import services

if TYPE_CHECKING:
    from apps.imap.session import Reply, Session

ROOT = ""


def _error(text: str, code: str | None = None) -> Exception:
    from apps.imap.session import CommandError

    return CommandError(text, code=code)


async def _quota_line(session: Session) -> str | None:
    assert session.user is not None
    usage = await query.run(services.usage)(session.user.pk)
    if not usage.quota_bytes:
        return None
    used_kb = (usage.used_bytes + 1023) // 1024
    return f'QUOTA "{ROOT}" (STORAGE {used_kb} {usage.quota_bytes // 1024})'


async def getquotaroot(session: Session, command: Command) -> Reply:
    """RFC 9208 §4.3: QUOTAROOT, then QUOTA for each root (none when unlimited)."""
    from apps.imap.session import Reply

    args = command.args
    assert isinstance(args, GetQuotaRoot) and session.user is not None
    try:
        await query.run(query.folder_id_of)(session.user.pk, args.mailbox)
    except services.FolderNotFound:
        raise _error("No such mailbox", "NONEXISTENT") from None
    line = await _quota_line(session)
    name = responses.mailbox(args.mailbox, utf8=session.utf8).decode()
    session.untagged(f'QUOTAROOT {name} "{ROOT}"' if line else f"QUOTAROOT {name}")
    if line:
        session.untagged(line)
    return Reply()


async def getquota(session: Session, command: Command) -> Reply:
    from apps.imap.session import Reply

    args = command.args
    assert isinstance(args, GetQuota)
    line = await _quota_line(session) if args.root == ROOT else None
    if line is None:
        raise _error("No such quota root", "NONEXISTENT")
    session.untagged(line)
    return Reply()


async def setquota(session: Session, command: Command) -> Reply:
    raise _error("Quotas are set by the administrator", "NOPERM")
