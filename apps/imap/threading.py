"""IMAP THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES, and the THREAD response.

A thread comes back as a list: the UIDs of a chain (each the only child of the one before),
then, if the last one has two or more children, one such list per child. A thread with a
dummy root (REFERENCES only, RFC 5256 §3) starts straight with its two or more lists. So
`[[2], [3, 6, [4, 23], [44, 7, 96]], [[8], [9]]]` is "(2)(3 6 (4 23)(44 7 96))((8)(9))".

Everything walks the trees without recursion: a hostile References chain can be deep.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, TypeAlias

from django.db.models.functions import Coalesce

from apps.imap.parse_search import SearchKey
from apps.imap.search import matching
from apps.imap.sort import casemap

# A thread or sub-thread: UIDs, then nested threads (see the module docstring).
ThreadNode: TypeAlias = list["int | ThreadNode"]
ALGORITHMS = frozenset({"ORDEREDSUBJECT", "REFERENCES"})
_COLUMNS = ("uid", "message_id", "in_reply_to", "references", "subject", "base_subject")
# RFC 5256 §2.2: the sent date, or the internal date when there is none; ties go by
# sequence number, which is UID order.
_SENT_ORDER = (Coalesce("sent_date", "internal_date"), "uid")
# RFC 5256 §2.1: what marks a subject as a reply or forward ("subj-refwd" after any
# "subj-blob"s, a "[fwd:" wrapper, or a "(fwd)" trailer).
_REPLY_OR_FORWARD = re.compile(
    r"^\s*(?:\[[^\[\]]*\]\s*)*(?:(?:re|fwd?)\s*(?:\[[^\[\]]*\])?:|\[fwd:)|\(fwd\)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """What threading looks at of one message. `position` is its place among the messages
    sorted by sent date (RFC 5256 §2.2), which SQL works out without making datetimes."""

    uid: int
    position: int
    message_id: str
    in_reply_to: str
    references: str
    subject: str
    base_subject: str

    @property
    def subject_key(self) -> str:
        return casemap(self.base_subject)  # RFC 5256 §2.1, compared case-insensitively


def run_thread(
    folder_id: int,
    algorithm: str,
    key: SearchKey,
    *,
    uids: Sequence[int],
    saved: Sequence[int] | None = None,
    recent: Sequence[tuple[int, int]] = (),
) -> list[ThreadNode]:
    """The threads of the messages matching `key`, as nested lists of UIDs."""
    algorithm = algorithm.upper()
    if algorithm not in ALGORITHMS:
        raise ValueError(f"Unknown threading algorithm {algorithm}")
    rows = matching(folder_id, key, uids=uids, saved=saved, recent=recent).order_by(*_SENT_ORDER)
    messages = [
        ThreadMessage(uid, position, *rest)
        for position, (uid, *rest) in enumerate(rows.values_list(*_COLUMNS))
    ]
    messages.sort(key=lambda m: m.uid)  # REFERENCES step 1 goes in mailbox order
    if algorithm == "ORDEREDSUBJECT":
        return ordered_subject(messages)
    return references(messages)


# --- ORDEREDSUBJECT (RFC 5256 §3) ---------------------------------------------------------


def ordered_subject(messages: Sequence[ThreadMessage]) -> list[ThreadNode]:
    """Group by base subject; the first message (by sent date) is the parent of all the
    others, which are siblings; threads in the order of their first message."""
    ordered = sorted(((m.subject_key, m.position), m) for m in messages)  # keys are unique
    threads: list[tuple[int, ThreadNode]] = []
    for _, group in groupby(ordered, key=lambda pair: pair[0][0]):
        first, *rest = (message for _, message in group)
        thread: ThreadNode = [first.uid]
        if len(rest) == 1:
            thread.append(rest[0].uid)
        else:
            thread.extend([m.uid] for m in rest)
        threads.append((first.position, thread))
    threads.sort(key=lambda pair: pair[0])
    return [thread for _, thread in threads]


# --- REFERENCES (RFC 5256 §3) -------------------------------------------------------------


class _Container:
    """A message, or a dummy standing for a Message-ID only seen in references."""

    __slots__ = ("children", "message", "parent")

    def __init__(self, children: list[_Container] | None = None) -> None:
        self.message: ThreadMessage | None = None
        self.parent: _Container | None = None
        self.children: list[_Container] = [] if children is None else children

    def adopt(self, child: _Container) -> None:
        if child.parent is not None:
            child.parent.children.remove(child)
        child.parent = self
        self.children.append(child)

    def has_ancestor(self, other: _Container) -> bool:
        node: _Container | None = self
        while node is not None:
            if node is other:
                return True
            node = node.parent
        return False

    @property
    def first(self) -> ThreadMessage:
        """The message itself, or a dummy's first child's (RFC 5256 steps 4 to 6)."""
        node = self
        while node.message is None:
            node = node.children[0]
        return node.message


def references(messages: Sequence[ThreadMessage]) -> list[ThreadNode]:
    """RFC 5256 §3 REFERENCES: link by References / In-Reply-To, prune dummies, merge
    threads by base subject, sort siblings by sent date."""
    roots = _link(messages)  # steps 1 and 2
    roots = _prune(roots)  # step 3
    _sort_children(roots)  # step 4: the root's children, a dummy by its first child
    roots = _merge_by_subject(roots)  # step 5
    _sort_children(roots)  # step 6: every level
    return [_node(root) for root in roots]


def _references_of(message: ThreadMessage) -> list[str]:
    """Step 1: References, else the first Message-ID of In-Reply-To, else none."""
    found = message.references.split()
    return found or ([message.in_reply_to] if message.in_reply_to else [])


def _link(messages: Sequence[ThreadMessage]) -> list[_Container]:
    """Steps 1.A and 1.B, then step 2: the containers without a parent."""
    by_id: dict[str, _Container] = {}
    every: list[_Container] = []
    for message in messages:
        own = by_id.get(message.message_id) if message.message_id else None
        if own is None or own.message is not None:
            # No Message-ID, or one an earlier message has: a unique one (step 1).
            own = _Container()
            every.append(own)
            if message.message_id and message.message_id not in by_id:
                by_id[message.message_id] = own
        own.message = message
        parent = None
        for reference in _references_of(message):
            container = by_id.get(reference)
            if container is None:
                container = by_id[reference] = _Container()
                every.append(container)
            # 1.A: link each reference to the next, keeping any parent it already has
            # (References may be truncated) and never making a loop.
            if (
                parent is not None
                and container.parent is None
                and not _would_loop(parent, container)
            ):
                parent.adopt(container)
            parent = container
        # 1.B: the last reference is the parent, replacing any earlier link, loops aside.
        if own.parent is not None:
            own.parent.children.remove(own)
            own.parent = None
        if parent is not None and not _would_loop(parent, own):
            parent.adopt(own)
    return [c for c in every if c.parent is None]


def _would_loop(parent: _Container, child: _Container) -> bool:
    """Whether making `parent` the parent of `child` closes a loop. Only a child that has
    children of its own needs the walk up the tree, which keeps long chains linear."""
    return parent is child or (bool(child.children) and parent.has_ancestor(child))


def _prune(roots: list[_Container]) -> list[_Container]:
    """Step 3: drop childless dummies; replace a dummy by its children, except at the top
    level where a dummy with two or more children stays. Bottom-up, without recursion."""
    top = _Container(children=roots)
    for node in reversed(list(_preorder(top))):
        kept: list[_Container] = []
        for child in node.children:
            if child.message is None and (node is not top or len(child.children) <= 1):
                for grandchild in child.children:
                    grandchild.parent = node if node is not top else None
                kept.extend(child.children)
            else:
                kept.append(child)
        node.children = kept
    return top.children


def _merge_by_subject(roots: list[_Container]) -> list[_Container]:
    """Step 5: threads whose (thread) base subjects are equal become one. The order of
    the top level does not matter any more: step 6 sorts it again."""
    table: dict[str, _Container] = {}
    for root in roots:  # 5.B: one container per subject, preferring dummies and non-replies
        subject = root.first.subject_key
        old = table.get(subject)
        if subject and (
            old is None
            or (
                old.message is not None
                and (root.message is None or (_is_reply(old) and not _is_reply(root)))
            )
        ):
            table[subject] = root
    added: list[_Container] = []
    for root in roots:  # 5.C
        subject = root.first.subject_key
        kept = table.get(subject) if subject else None
        if kept is None or kept is root or root.parent is not None:
            continue  # no subject, the table's own, or merged already
        if kept.message is None and root.message is None:
            for child in list(root.children):
                kept.adopt(child)
        elif kept.message is None or (_is_reply(root) and not _is_reply(kept)):
            kept.adopt(root)
        else:
            dummy = table[subject] = _Container()
            dummy.adopt(kept)
            dummy.adopt(root)
            added.append(dummy)
    return [
        c for c in [*roots, *added] if c.parent is None and (c.message is not None or c.children)
    ]


def _is_reply(container: _Container) -> bool:
    return container.message is not None and bool(
        _REPLY_OR_FORWARD.search(container.message.subject)
    )


def _sort_children(roots: list[_Container]) -> None:
    """Steps 4 and 6: sort siblings by sent date, deepest first, so a dummy's first child
    is already its earliest when the dummy's own place is decided."""
    top = _Container(children=roots)
    for node in reversed(list(_preorder(top))):
        node.children.sort(key=lambda c: c.first.position)


def _preorder(top: _Container) -> Iterator[_Container]:
    stack = [top]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children)


def _node(root: _Container) -> ThreadNode:
    """One thread as the nested list described in the module docstring."""
    thread: ThreadNode = []
    stack: list[tuple[_Container, ThreadNode]] = [(root, thread)]
    while stack:
        node, out = stack.pop()
        while node.message is not None:
            out.append(node.message.uid)
            if len(node.children) != 1:
                break
            node = node.children[0]
        for child in node.children:
            branch: ThreadNode = []
            out.append(branch)
            stack.append((child, branch))
    return thread


# --- the THREAD response (RFC 5256 §4) ----------------------------------------------------


def render_threads(
    threads: Sequence[ThreadNode], seq_of_uid: Callable[[int], int | None] | None = None
) -> bytes:
    """The thread lists of a THREAD response, e.g. b"(2)(3 6 (4 23)(44 7 96))": UIDs, or
    sequence numbers through `seq_of_uid` (RFC 5256 §4 "thread-list")."""
    out: list[str] = []
    stack: list[Any] = list(reversed(threads))
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, int):
            out.append(str(_number(item, seq_of_uid)))
        else:
            tokens: list[Any] = ["("]
            for index, member in enumerate(item):
                if index and isinstance(item[index - 1], int):
                    tokens.append(" ")  # thread-members: numbers, then nested lists
                tokens.append(member)
            tokens.append(")")
            stack.extend(reversed(tokens))
    return "".join(out).encode("ascii")


def _number(uid: int, seq_of_uid: Callable[[int], int | None] | None) -> int:
    if seq_of_uid is None:
        return uid
    seq = seq_of_uid(uid)
    if seq is None:
        raise ValueError(f"UID {uid} has no sequence number")
    return seq
