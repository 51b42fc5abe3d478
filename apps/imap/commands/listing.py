"""LIST and LSUB: RFC 9051 §6.3.9, RFC 3501 §6.3.9 (LSUB), RFC 5258 LIST-EXTENDED,
RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE, RFC 3348 CHILDREN.

Folders are stored by full name with "/" between levels; a parent that has no row of
its own (its children were created first, or it was deleted) is listed as \\NonExistent.
Subscriptions are names of their own, not folders: LSUB and LIST (SUBSCRIBED) list them
whether or not a folder has the name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from apps.imap import query, responses
from apps.imap.commands.mailbox import status_line
from apps.imap.parser import Command, List, Lsub
from apps.imap.session import Reply, Session
from apps.mailstore import services
from mailhost.threads import in_thread

DELIMITER = "/"


@dataclass
class Entry:
    name: str
    exists: bool
    special_use: str = ""
    subscribed: bool = False
    has_children: bool = False


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


def ancestors(name: str) -> Iterator[str]:
    """The parents of "a/b/c": "a", then "a/b"."""
    parts = name.split(DELIMITER)
    for depth in range(1, len(parts)):
        yield DELIMITER.join(parts[:depth])


def tree(folders: list, subscribed: set[str]) -> dict[str, Entry]:
    """Every folder, plus the parents that exist only through their children. Children
    are mailboxes (RFC 3348): a subscribed name without a folder is no child."""
    entries = {f.name: Entry(f.name, True, f.special_use) for f in folders}
    for folder in folders:
        for parent in ancestors(folder.name):
            entries.setdefault(parent, Entry(parent, False)).has_children = True
    for name, entry in entries.items():
        entry.subscribed = name in subscribed
    return entries


@dataclass
class Subscribed:
    """The subscription list seen through some patterns (RFC 5258 §3.5, RFC 3501 §6.3.9)."""

    names: set[str]
    parents: set[str] = field(default_factory=set)  # names with a subscribed descendant
    # ... with one the patterns do not match, so it would not be listed itself.
    parents_beyond: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, names: set[str], matches: Callable[[str], object]) -> Subscribed:
        found = cls(names)
        for name in names:
            beyond = not matches(name)
            for parent in ancestors(name):
                found.parents.add(parent)
                if beyond:
                    found.parents_beyond.add(parent)
        return found

    def entry(self, entries: dict[str, Entry], name: str) -> Entry:
        """A name's entry; a subscribed name no folder has is \\NonExistent (RFC 5258 §3.4)."""
        return entries.get(name) or Entry(name, False, subscribed=name in self.names)


def _inbox_first(name: str) -> tuple[bool, str]:
    return name != "INBOX", name


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
    folders, names = await in_thread(query.mailbox_tree, session.user.pk)
    entries = tree(folders, names)
    patterns = [pattern_regex(args.reference, p) for p in args.patterns]
    subscribed = Subscribed.of(names, lambda name: any(p.fullmatch(name) for p in patterns))
    show_subscribed = "SUBSCRIBED" in args.selection or "SUBSCRIBED" in args.returns
    for name in sorted(_candidates(args, entries, subscribed), key=_inbox_first):
        if not any(p.fullmatch(name) for p in patterns):
            continue
        entry = subscribed.entry(entries, name)
        childinfo = _childinfo(args, entry, subscribed)
        if childinfo is None or ("SPECIAL-USE" in args.selection and not entry.special_use):
            continue
        attrs = attributes(entry, subscribed=show_subscribed, children=True)
        line = f'LIST ({" ".join(attrs)}) "/" '.encode() + responses.mailbox(
            name, utf8=session.utf8
        )
        if childinfo:
            line += b' ("CHILDINFO" ("SUBSCRIBED"))'
        session.write(b"* " + line + b"\r\n")
        if args.status_items and entry.exists:
            await _status_after(session, name, args.status_items)
    return Reply()


def _candidates(args: List, entries: dict[str, Entry], subscribed: Subscribed) -> set[str]:
    """RFC 5258 §3.1: SUBSCRIBED lists subscribed names, whether or not a mailbox has
    them (and, with RECURSIVEMATCH, their parents); otherwise the mailboxes are listed."""
    if "SUBSCRIBED" not in args.selection:
        return set(entries)
    if "RECURSIVEMATCH" in args.selection:
        return subscribed.names | subscribed.parents
    return subscribed.names


def _childinfo(args: List, entry: Entry, subscribed: Subscribed) -> bool | None:
    """Whether the line carries CHILDINFO ("SUBSCRIBED"); None: not listed at all.

    RFC 5258 §3.5 and §5 examples 8 and 9, with RECURSIVEMATCH: a subscribed name says so
    when it has subscribed descendants; a name that is not subscribed is listed (without
    \\Subscribed) only for a subscribed descendant the patterns do not match, which the
    client would otherwise not learn of ("foo2" for "foo2/bar1" under "*2", but not
    "baz2", whose subscribed children all match and are listed themselves).
    """
    if not ("SUBSCRIBED" in args.selection and "RECURSIVEMATCH" in args.selection):
        return False
    if entry.subscribed:
        return entry.name in subscribed.parents
    return True if entry.name in subscribed.parents_beyond else None


async def _status_after(session: Session, name: str, items: tuple[str, ...]) -> None:
    """RFC 5819 §2: a STATUS response after the LIST line; a mailbox that cannot be read
    is simply left without one."""
    try:
        session.write(await status_line(session, name, items))
    except services.FolderNotFound:
        pass


async def lsub(session: Session, command: Command) -> Reply:
    """RFC 3501 §6.3.9: subscribed names, whether or not a mailbox has them; a name the
    pattern matches whose subscribed descendants it does not ("foo" for a subscribed
    "foo/bar" under "%") is shown \\Noselect if it is not subscribed itself."""
    args = command.args
    assert isinstance(args, Lsub)
    assert session.user is not None
    if args.pattern is None:
        return Reply()
    folders, names = await in_thread(query.mailbox_tree, session.user.pk)
    entries = tree(folders, names)
    pattern = pattern_regex(args.reference, args.pattern)
    subscribed = Subscribed.of(names, pattern.fullmatch)
    for name in sorted(subscribed.names | subscribed.parents_beyond, key=_inbox_first):
        if not pattern.fullmatch(name):
            continue
        if name in subscribed.names:
            attrs = "" if subscribed.entry(entries, name).exists else "\\Noselect"
        else:
            attrs = "\\Noselect"
        session.write(
            f'* LSUB ({attrs}) "/" '.encode() + responses.mailbox(name, utf8=session.utf8) + b"\r\n"
        )
    return Reply()
