"""A per-process index of the folders sessions open: UIDs, modseqs and flags in compact
arrays, kept current from the store's modseq watermarks.

SELECT and FETCH (FLAGS) read it instead of scanning the message table, the way Dovecot
reads its index files: a folder of 100,000 messages is loaded once (one query), after
which bringing it up to date is one indexed query for rows and tombstones with a modseq
above the watermarks (the same rule as `selected.py`: rows first, then tombstones; both
idempotent). The store stays the truth: the index is a cache of it, bounded in size and
correct whichever process or node made a change. Big folders also keep their index in a
file (index_file.py), so a restarted server catches up from the file's watermarks instead
of loading every row again. All methods run on worker threads.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apps.imap import index_file, query, responses
from apps.imap.recent import RecentUids
from apps.mailstore import services

# Cached messages in all folders together (about 17 bytes each), before the least
# recently used folders are dropped.
MAX_MESSAGES = 2_000_000
# System flags as bits, in responses.SYSTEM_FLAGS order.
_BITS = (1, 2, 4, 8, 16)
_DELETED = 8
_SEEN_BIT = bytes(bits & 1 for bits in range(256))  # flag bits -> 1 if \Seen, else 0
# Expunged messages above which a folder's arrays are rebuilt rather than cut one by one.
_REBUILD_AFTER = 64
# Changes applied to a folder before its index file is written again.
SAVE_AFTER_CHANGES = 2000


def flag_bits(seen: Any, answered: Any, flagged: Any, deleted: Any, draft: Any) -> int:
    return sum(
        bit for bit, on in zip(_BITS, (seen, answered, flagged, deleted, draft), strict=True) if on
    )


def flags_text(bits: int, keywords: str, recent: bool = False) -> str:
    """The FLAGS list of a message from its bits and keyword text."""
    seen, answered, flagged, deleted, draft = (bits & bit for bit in _BITS)
    return responses.message_flags(seen, answered, flagged, deleted, draft, keywords, recent=recent)


@dataclass
class Entry:
    """One folder as of its watermarks."""

    folder_id: int
    uids: array = field(default_factory=lambda: array("q"))
    modseqs: array = field(default_factory=lambda: array("q"))
    flags: array = field(default_factory=lambda: array("B"))
    keywords: dict[int, str] = field(default_factory=dict)  # uid -> " a b " when not empty
    known_keywords: set[str] = field(default_factory=set)
    message_mark: int = 0
    expunge_mark: int = 0
    uidvalidity: int = 0
    loaded: bool = False
    unsaved: int = 0  # changes applied since the file was written
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self) -> None:
        """From the folder's file, brought up to date, when it has a usable one; else
        everything in one query, and a file for the next start."""
        self.uidvalidity, highestmodseq = query.folder_marks(self.folder_id)
        saved = index_file.read(self.folder_id)
        if saved is not None and saved.usable(self.uidvalidity, highestmodseq):
            self._adopt(saved)
            self.refresh()
        else:
            self._load_rows()
            self.save()
        self.loaded = True

    def _load_rows(self) -> None:
        """The tombstone watermark is the highest modseq read before the rows, so an
        expunge racing the load is applied by the next refresh."""
        self.expunge_mark = query.highest_expunge_modseq(self.folder_id)
        rows, self.keywords = query.index_rows(self.folder_id)
        self.uids = array("q", [r[0] for r in rows])
        self.modseqs = array("q", [r[1] for r in rows])
        self.flags = array("B", [r[2] for r in rows])
        self.known_keywords = {k for text in self.keywords.values() for k in text.split()}
        self.message_mark = max(self.modseqs, default=0)

    def _adopt(self, saved: index_file.Saved) -> None:
        self.uids, self.modseqs, self.flags = saved.uids, saved.modseqs, saved.flags
        self.keywords = saved.keywords
        self.known_keywords = {k for text in self.keywords.values() for k in text.split()}
        self.message_mark, self.expunge_mark = saved.message_mark, saved.expunge_mark

    def save(self) -> None:
        index_file.write(
            self.folder_id,
            index_file.Saved(
                self.uidvalidity,
                self.message_mark,
                self.expunge_mark,
                self.uids,
                self.modseqs,
                self.flags,
                self.keywords,
            ),
        )
        self.unsaved = 0

    def refresh(self) -> None:
        """Apply what changed after the watermarks; rewrite the file now and then, so a
        restart has little to catch up on."""
        changes = query.changes_since(self.folder_id, self.message_mark, self.expunge_mark)
        self._apply_rows(changes.rows)
        gone = set()
        for uid, modseq in changes.expunged:
            self.expunge_mark = max(self.expunge_mark, modseq)
            gone.add(uid)
        if gone:
            self._remove(gone)
        self.unsaved += len(changes.rows) + len(gone)
        if self.unsaved >= SAVE_AFTER_CHANGES:
            self.save()

    def _apply_rows(self, rows: list[tuple[Any, ...]]) -> None:
        for row in rows:
            uid, modseq = row[0], row[1]
            self.message_mark = max(self.message_mark, modseq)
            bits = flag_bits(*row[2:7])
            index = bisect_left(self.uids, uid)
            if index < len(self.uids) and self.uids[index] == uid:
                self.modseqs[index], self.flags[index] = modseq, bits
            elif index == len(self.uids):
                self.uids.append(uid)
                self.modseqs.append(modseq)
                self.flags.append(bits)
            else:  # cannot happen (UIDs only grow); stay correct regardless
                self.uids.insert(index, uid)
                self.modseqs.insert(index, modseq)
                self.flags.insert(index, bits)
            if row[7] != " ":
                self.keywords[uid] = row[7]
                self.known_keywords.update(row[7].split())
            else:
                self.keywords.pop(uid, None)

    def _remove(self, gone: set[int]) -> None:
        if len(gone) > _REBUILD_AFTER:
            keep = [i for i, uid in enumerate(self.uids) if uid not in gone]
            self.uids = array("q", [self.uids[i] for i in keep])
            self.modseqs = array("q", [self.modseqs[i] for i in keep])
            self.flags = array("B", [self.flags[i] for i in keep])
        else:  # a few: found by bisection and cut out (a memmove, not 100,000 steps)
            for uid in gone:
                index = bisect_left(self.uids, uid)
                if index < len(self.uids) and self.uids[index] == uid:
                    del self.uids[index], self.modseqs[index], self.flags[index]
        for uid in gone:
            self.keywords.pop(uid, None)

    def first_unseen(self) -> int | None:
        """The UID of the first message without \\Seen. In C: a mailbox read to the end
        (the usual case) would otherwise cost a Python step per message, 10 ms for 100,000."""
        at = self.flags.tobytes().translate(_SEEN_BIT).find(0)
        return self.uids[at] if at >= 0 else None

    def flag_rows(self, uids: Iterable[int]) -> list[tuple[int, int, int, str]]:
        """(uid, modseq, flag bits, keywords) for the UIDs still in the folder."""
        out = []
        for uid in uids:
            index = bisect_left(self.uids, uid)
            if index < len(self.uids) and self.uids[index] == uid:
                out.append(
                    (uid, self.modseqs[index], self.flags[index], self.keywords.get(uid, " "))
                )
        return out


class FolderIndex:
    """The entries, least recently used first; thread-safe."""

    def __init__(self, max_messages: int = MAX_MESSAGES) -> None:
        self.max_messages = max_messages
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def current(self, folder_id: int) -> Entry:
        """The folder's entry, brought up to date; the caller holds `entry.lock` after."""
        with self._lock:
            entry = self._entries.get(folder_id)
            if entry is None:
                entry = self._entries[folder_id] = Entry(folder_id)
            self._entries.move_to_end(folder_id)
        entry.lock.acquire()
        try:
            if not entry.loaded:
                entry.load()
            else:
                entry.refresh()
        except BaseException as exc:
            entry.lock.release()
            if isinstance(exc, query.FolderGone):
                self.forget(folder_id)
                index_file.remove(folder_id)
            raise
        self._evict()
        return entry

    def _evict(self) -> None:
        with self._lock:
            total = sum(len(e.uids) for e in self._entries.values())
            while total > self.max_messages and len(self._entries) > 1:
                _, oldest = self._entries.popitem(last=False)
                total -= len(oldest.uids)

    def __contains__(self, folder_id: object) -> bool:
        return folder_id in self._entries

    def cached(self) -> list[int]:
        """Folder ids held, least recently used first."""
        with self._lock:
            return list(self._entries)

    def forget(self, folder_id: int) -> None:
        with self._lock:
            self._entries.pop(folder_id, None)


folders = FolderIndex()


def save_behind(since: datetime) -> int:
    """Write the file of every big folder changed since `since` whose file is missing or
    SAVE_AFTER_CHANGES behind its HIGHESTMODSEQ; returns how many were written.

    The worker runs this after it files mail, as Dovecot's delivery agent updates
    `dovecot.index`: a folder that grew by delivery alone, never opened by IMAP, then
    opens from its file like any other (a file is brought up to date from its watermarks,
    so one written this way is as good as a session's). Writing costs a read of the old
    file and the rows after it, once per SAVE_AFTER_CHANGES changes.
    """
    if not index_file.enabled():
        return 0
    written = 0
    for folder_id, highestmodseq in query.folders_changed_since(since, index_file.MIN_MESSAGES):
        mark = index_file.message_mark(folder_id)
        if mark is not None and highestmodseq - mark < SAVE_AFTER_CHANGES:
            continue
        if mark is None and query.message_count(folder_id) < index_file.MIN_MESSAGES:
            continue
        entry = Entry(folder_id)
        try:
            entry.load()
        except query.FolderGone:
            continue
        if entry.unsaved:  # load() saves when it read every row; after a file, this does
            entry.save()
        written += 1
    return written


def open_folder(user_id: int, name: str) -> query.Snapshot:
    """What SELECT needs, from the index: the folder's counters (read first, so anything
    newer is seen again by the session's first sync), a private copy of its UIDs, the
    keywords in use and the first unseen message."""
    folder = services.get_folder(user_id, name)
    entry = folders.current(folder.pk)
    try:
        uids = array("q", entry.uids)
        keywords = sorted(entry.known_keywords)
        first_unseen = entry.first_unseen()
    finally:
        entry.lock.release()
    return query.Snapshot(
        folder_id=folder.pk,
        name=folder.name,
        uidvalidity=folder.uidvalidity,
        uidnext=folder.uidnext,
        highestmodseq=folder.highestmodseq,
        special_use=folder.special_use,
        recent_uid=folder.recent_uid,
        uids=uids,
        first_unseen_uid=first_unseen,
        keywords=keywords,
    )


def would_change(folder_id: int, uids: Sequence[int], mode: str, flags: Sequence[str]) -> bool:
    """Whether STORE `mode` `flags` would change any of these messages as the folder is
    now; False lets a session skip a write transaction that would change nothing."""
    entry = folders.current(folder_id)
    try:
        rows = entry.flag_rows(uids)
    finally:
        entry.lock.release()
    wanted = {f.lower() for f in flags}
    for _, _, bits, keywords in rows:
        current = flags_text(bits, keywords)[1:-1].split()
        have = {f.lower() for f in current}
        if mode == "add" and not wanted <= have:
            return True
        if mode == "remove" and wanted & have:
            return True
        if mode == "replace" and sorted(current) != sorted(dict.fromkeys(flags)):
            return True
    return False


def has_deleted(folder_id: int, uids: Sequence[int] | None = None) -> bool:
    """Whether any message (of `uids`, if given) has \\Deleted: EXPUNGE and CLOSE skip the
    store's write transaction when nothing would go."""
    entry = folders.current(folder_id)
    try:
        if uids is None:
            return any(bits & _DELETED for bits in entry.flags)
        return any(bits & _DELETED for _, _, bits, _ in entry.flag_rows(uids))
    finally:
        entry.lock.release()


def flag_lines(
    folder_id: int,
    pairs: Sequence[tuple[int, int]],
    names: Sequence[str],
    recent: RecentUids | None = None,
) -> bytes:
    """FETCH responses with only UID, FLAGS and MODSEQ, for (seq, uid) pairs (ascending);
    FLAGS show \\Recent for the session's `recent` UIDs (RFC 3501 §2.3.2)."""
    entry = folders.current(folder_id)
    try:
        rows = entry.flag_rows(uid for _, uid in pairs)
    finally:
        entry.lock.release()
    seq_of = dict((uid, seq) for seq, uid in pairs)
    if recent is not None and recent.ranges:
        mine = recent.marks([row[0] for row in rows])
    else:
        mine = bytearray(len(rows))
    out = []
    for (uid, modseq, bits, keywords), is_recent in zip(rows, mine, strict=True):
        parts = []
        for name in names:
            if name == "UID":
                parts.append(f"UID {uid}")
            elif name == "FLAGS":
                parts.append(f"FLAGS {flags_text(bits, keywords, bool(is_recent))}")
            else:
                parts.append(f"MODSEQ ({modseq})")
        out.append(f"* {seq_of[uid]} FETCH ({' '.join(parts)})\r\n")
    return "".join(out).encode()
