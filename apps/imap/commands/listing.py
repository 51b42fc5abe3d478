"""LIST and LSUB: RFC 9051 §6.3.9, RFC 3501 §6.3.9 (LSUB), RFC 5258 LIST-EXTENDED,
RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE, RFC 3348 CHILDREN.

Folders are stored by full name with "/" between levels; a parent that has no row of
its own (its children were created first, or it was deleted) is listed as \\NonExistent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from apps.imap import query, responses
from apps.imap.commands.mailbox import status_line
from apps.imap.parser import Command, List, Lsub
from apps.imap.session import Reply, Session
from apps.mailstore import services

DELIMITER = "/"


@dataclass
class Entry:
    name: str
    exists: bool
    special_use: str = ""
    subscribed: bool = False
    has_children: bool = False
    subscribed_child: bool = False  # RFC 5258 §3.5 CHILDINFO ("SUBSCRIBED")


def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    """RFC 9051 §6.3.9: "*" matches anything, "%" anything but the delimiter. A leading
    INBOX matches in any case (RFC 9051 §5.1)."""
    full = reference + pattern
    if full[:5].upper() == "INBOX" and (len(full) == 5 or full[5] in "/*%"):
        full = "INBOX" + full[5:]
    parts = []
    for char in full:
        if char == "*":
            parts.append(".*")
        elif char == "%":
            parts.append("[^/]*")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def tree(folders: list) -> dict[str, Entry]:
    """Every folder, plus the parents that exist only through their children."""
    entries = {f.name: Entry(f.name, True, f.special_use, f.subscribed) for f in folders}
    for folder in folders:
        parts = folder.name.split(DELIMITER)
        for depth in range(1, len(parts)):
            parent = DELIMITER.join(parts[:depth])
            entry = entries.setdefault(parent, Entry(parent, False))
            entry.has_children = True
            entry.subscribed_child = entry.subscribed_child or folder.subscribed
    return entries


def attributes(entry: Entry, *, subscribed: bool, children: bool) -> list[str]:
    attrs: list[str] = []
    if not entry.exists:
        attrs += ["\\NonExistent", "\\Noselect"]  # RFC 5258 §3.4: NonExistent implies it
    if children:  # RFC 3348 / RFC 9051 §7.3.1
        attrs.append("\\HasChildren" if entry.has_children else "\\HasNoChildren")
    if subscribed and entry.subscribed:
        attrs.append("\\Subscribed")
    if entry.special_use:
        attrs.append(entry.special_use)
    return attrs


async def list_(session: Session, command: Command) -> Reply:
    args = command.args
    assert isinstance(args, List)
    if args.patterns == ("",) and not args.extended:
        # RFC 9051 §6.3.9: the empty pattern asks for the delimiter and root.
        session.untagged('LIST (\\Noselect) "/" ""')
        return Reply()
    assert session.user is not None
    entries = tree(await query.run(query.list_folders)(session.user.pk))
    patterns = [pattern_regex(args.reference, p) for p in args.patterns]
    only_subscribed = "SUBSCRIBED" in args.selection
    recursive = "RECURSIVEMATCH" in args.selection
    only_special = "SPECIAL-USE" in args.selection
    show_subscribed = only_subscribed or "SUBSCRIBED" in args.returns
    for name in sorted(entries, key=lambda n: (n != "INBOX", n)):
        entry = entries[name]
        if not any(p.fullmatch(name) for p in patterns):
            continue
        childinfo = False
        if only_subscribed and not entry.subscribed:
            if not (recursive and entry.subscribed_child):
                continue
            childinfo = True
        if only_special and not entry.special_use:
            continue
        attrs = attributes(entry, subscribed=show_subscribed, children=True)
        if childinfo and entry.exists:
            attrs = [a for a in attrs if a != "\\Subscribed"]
        line = f'LIST ({" ".join(attrs)}) "/" '.encode() + responses.mailbox(
            name, utf8=session.utf8
        )
        if childinfo:
            line += b' ("CHILDINFO" ("SUBSCRIBED"))'
        session.write(b"* " + line + b"\r\n")
        if args.status_items and entry.exists:
            await _status_after(session, name, args.status_items)
    return Reply()


async def _status_after(session: Session, name: str, items: tuple[str, ...]) -> None:
    """RFC 5819 §2: a STATUS response after the LIST line; a mailbox that cannot be read
    is simply left without one."""
    try:
        session.write(await status_line(session, name, items))
    except services.FolderNotFound:
        pass


async def lsub(session: Session, command: Command) -> Reply:
    """RFC 3501 §6.3.9: subscribed names; a parent matched by "%" whose children are
    subscribed is shown \\Noselect."""
    args = command.args
    assert isinstance(args, Lsub)
    assert session.user is not None
    if args.pattern is None:
        return Reply()
    entries = tree(await query.run(query.list_folders)(session.user.pk))
    pattern = pattern_regex(args.reference, args.pattern)
    for name in sorted(entries, key=lambda n: (n != "INBOX", n)):
        entry = entries[name]
        if not pattern.fullmatch(name):
            continue
        if entry.subscribed:
            attrs = "" if entry.exists else "\\Noselect"
        elif entry.subscribed_child and args.pattern.endswith("%"):
            attrs = "\\Noselect"
        else:
            continue
        session.write(
            f'* LSUB ({attrs}) "/" '.encode() + responses.mailbox(name, utf8=session.utf8) + b"\r\n"
        )
    return Reply()
