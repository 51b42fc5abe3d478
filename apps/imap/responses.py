"""Building server responses (RFC 9051 §7): status lines, flag lists, mailbox names.

Message data (ENVELOPE, BODYSTRUCTURE, sections) is rendered by `apps.imap.render`; what
lives here is the small vocabulary every command uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from apps.imap.mutf7 import encode_mutf7

CRLF = b"\r\n"
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
# RFC 9051 §2.3.2: "\*" in PERMANENTFLAGS says clients may create new keywords.
PERMANENT_FLAGS = (*SYSTEM_FLAGS, "\\*")
RECENT = "\\Recent"  # RFC 3501 §2.3.2; a session's, never stored (deprecated in IMAP4rev2)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def tagged(tag: str, status: str, text: str, code: str | None = None) -> bytes:
    """ "tag OK [CODE] text" (RFC 9051 §7.1)."""
    return f"{tag} {status} {f'[{code}] ' if code else ''}{text}\r\n".encode()


def untagged(text: str) -> bytes:
    return b"* " + text.encode() + CRLF


def mailbox(name: str, *, utf8: bool) -> bytes:
    """A mailbox name as sent to this client: UTF-8 after ENABLE UTF8=ACCEPT or IMAP4rev2
    (RFC 6855 §3, RFC 9051 §5.1), modified UTF-7 otherwise (RFC 3501 §5.1.3)."""
    wire = name if utf8 else encode_mutf7(name)
    if wire.upper() == "INBOX":
        return b"INBOX"
    return b'"' + wire.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'


def flag_list(flags: Iterable[str], *, recent: bool = False) -> str:
    """A parenthesised flag list; `recent` adds \\Recent after the system flags (RFC 3501
    §2.3.2: the session's own, never stored)."""
    names = list(flags)
    if recent:
        names.insert(sum(1 for name in names if name.startswith("\\")), RECENT)
    return "(" + " ".join(names) + ")"


def message_flags(
    seen: object,
    answered: object,
    flagged: object,
    deleted: object,
    draft: object,
    keywords: str,
    *,
    recent: bool = False,
) -> str:
    """The FLAGS of a message row: system flag columns and the keyword text " a b "."""
    names = [
        name
        for name, on in zip(SYSTEM_FLAGS, (seen, answered, flagged, deleted, draft), strict=True)
        if on
    ]
    if recent:
        names.append(RECENT)
    return "(" + " ".join([*names, *keywords.split()]) + ")"


def internal_date(value: datetime) -> str:
    """RFC 9051 §9 "date-time": "17-Jul-1996 02:44:25 -0700", quoted."""
    offset = value.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (
        f'"{value.day:2d}-{_MONTHS[value.month - 1]}-{value.year:04d} '
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} "
        f'{sign}{minutes // 60:02d}{minutes % 60:02d}"'
    )


def uid_set(uids: Iterable[int]) -> str:
    """The shortest sequence-set text for these numbers: "1:3,7" (for COPYUID, VANISHED)."""
    parts: list[str] = []
    start = prev = -1
    for uid in sorted(uids):
        if uid == prev + 1 and start != -1:
            prev = uid
            continue
        if start != -1:
            parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = uid
    if start != -1:
        parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)
