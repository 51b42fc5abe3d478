"""The selected mailbox as one session has told its client about it (RFC 9051 §5.2, §7).

The session keeps the UIDs it announced (sequence number n is `uids[n - 1]`, an
array('q') so 100,000 messages cost 800 KB) and two watermarks: the highest modseq of
message rows and of expunge tombstones it has read. `sync` reads what changed after them
and turns it into EXISTS, EXPUNGE / VANISHED and FETCH FLAGS responses. Expunges that may
not be announced yet (during FETCH, STORE, SEARCH: RFC 9051 §7.5.1) wait in `pending`,
their sequence numbers still taken, until a command that allows them. New messages are
claimed as \\Recent (apps.imap.recent) before their EXISTS goes out, and the RECENT
count follows it (RFC 3501 §7.3.2).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable

from apps.imap import query, recent, responses
from apps.imap.seqset import SequenceSet
from mailhost.threads import in_thread

# Past this many expunges at once, rebuild the UID array instead of deleting one by one.
_REBUILD_AFTER = 64
_ANY = float("inf")  # an interval end above every number


class BadSequence(Exception):
    """A message sequence number beyond the mailbox (RFC 9051 §9 "seq-number")."""


class SelectedMailbox:
    def __init__(
        self, snapshot: query.Snapshot, *, readonly: bool, keeps_recent: bool = False
    ) -> None:
        self.folder_id = snapshot.folder_id
        self.name = snapshot.name
        self.uidvalidity = snapshot.uidvalidity
        self.readonly = readonly
        self.uids = snapshot.uids
        self.keywords = set(snapshot.keywords)
        self.message_mark = snapshot.highestmodseq
        self.expunge_mark = snapshot.highestmodseq
        self.pending: set[int] = set()  # expunged, not yet announced
        # uid -> modseq of FLAGS this session already sent (its own STORE), so the next
        # sync does not repeat them.
        self.sent: dict[int, int] = {}
        # \Recent is RFC 3501's: an IMAP4rev2 session neither claims nor shows it.
        self.keeps_recent = keeps_recent
        self.recent = recent.RecentUids()

    # -- numbers ------------------------------------------------------------------------

    @property
    def exists(self) -> int:
        """The message count the client knows (RFC 9051 §7.4.1 EXISTS)."""
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        index = bisect_left(self.uids, uid)
        return index + 1 if index < len(self.uids) and self.uids[index] == uid else None

    def resolve(
        self, numbers: SequenceSet, *, uid: bool, saved: list[int] | None = None
    ) -> list[tuple[int, int]]:
        """(seq, uid) pairs named by a set, ascending. Sequence numbers past the end raise
        BadSequence; UIDs not in the mailbox are skipped (RFC 9051 §6.4.9)."""
        if numbers.saved:  # RFC 5182 §2.1: "$" is the saved result (UIDs), or empty
            return [(seq, u) for u in (saved or ()) if (seq := self.seq_of(u)) is not None]
        pairs: list[tuple[int, int]] = []
        if not uid:
            for low, high in numbers.resolve(len(self.uids)):
                if high > len(self.uids):
                    raise BadSequence
                pairs.extend((seq, self.uids[seq - 1]) for seq in range(low, high + 1))
            return pairs
        largest = self.uids[-1] if self.uids else 0
        for low, high in numbers.resolve(largest):
            start, end = bisect_left(self.uids, low), bisect_right(self.uids, high)
            pairs.extend((i + 1, self.uids[i]) for i in range(start, end))
        return pairs

    def resolve_among(
        self, numbers: SequenceSet, uids: Iterable[int], *, uid: bool, saved: list[int] | None
    ) -> list[tuple[int, int]]:
        """What `resolve` gives, kept to `uids`, in as many steps as there are of those
        rather than of the messages the set names: FETCH 1:* (FLAGS) (CHANGEDSINCE m) in a
        folder of 100,000 wants the few changed ones. Raises BadSequence as `resolve` does."""
        candidates = sorted(set(uids))
        if numbers.saved:
            wanted = set(saved or ())
            candidates = [u for u in candidates if u in wanted]
            return [(seq, u) for u in candidates if (seq := self.seq_of(u)) is not None]
        largest = (self.uids[-1] if self.uids else 0) if uid else len(self.uids)
        intervals = numbers.resolve(largest)
        if not uid and intervals and intervals[-1][1] > len(self.uids):
            raise BadSequence
        pairs = []
        for candidate in candidates:
            seq = self.seq_of(candidate)
            if seq is None:
                continue
            number = candidate if uid else seq
            at = bisect_right(intervals, (number, _ANY)) - 1  # the last starting <= number
            if at >= 0 and intervals[at][0] <= number <= intervals[at][1]:
                pairs.append((seq, candidate))
        return pairs

    # -- keeping up with the store -------------------------------------------------------

    async def sync(self, *, expunge: bool, vanished: bool, condstore: bool) -> list[bytes]:
        """Responses that bring the client up to date; `expunge` False defers expunges,
        `vanished` uses VANISHED (RFC 7162 §3.2.10) instead of EXPUNGE."""
        changes = await in_thread(
            query.changes_since, self.folder_id, self.message_mark, self.expunge_mark
        )
        last = self.uids[-1] if self.uids else 0
        if self.keeps_recent and any(row[0] > last for row in changes.rows):
            await self.take_recent()
        return self.apply(changes, expunge=expunge, vanished=vanished, condstore=condstore)

    async def take_recent(self) -> None:
        """Make the messages no session has claimed recent to this one: claimed when
        read-write, only looked at when read-only (RFC 3501 §6.3.2, see recent.py)."""
        take = query.unclaimed if self.readonly else recent.claim
        self.recent.add(*await in_thread(take, self.folder_id))

    @property
    def recent_count(self) -> int:
        """The messages the client knows that are \\Recent to it (RFC 3501 §7.3.2)."""
        return self.recent.count(self.uids)

    def apply(
        self, changes: query.Changes, *, expunge: bool, vanished: bool, condstore: bool
    ) -> list[bytes]:
        # Rows first: a message both added and expunged since the last sync must be in
        # the UID list before its tombstone is matched against it.
        out = self._apply_rows(changes.rows, condstore)
        for uid, modseq in changes.expunged:
            self.expunge_mark = max(self.expunge_mark, modseq)
            if self.seq_of(uid) is not None:
                self.pending.add(uid)
        if expunge and self.pending:
            out += self.announce_expunges(vanished=vanished)
        self.sent.clear()
        return out

    def _apply_rows(self, rows: list[tuple], condstore: bool) -> list[bytes]:
        out: list[bytes] = []
        last = self.uids[-1] if self.uids else 0
        new = [row[0] for row in rows if row[0] > last]
        new_keywords: set[str] = set()
        for row in rows:
            uid, modseq = row[0], row[1]
            self.message_mark = max(self.message_mark, modseq)
            new_keywords.update(row[7].split())
            if uid > last or uid in self.pending or self.sent.get(uid) == modseq:
                continue
            seq = self.seq_of(uid)
            if seq is not None:
                out.append(
                    self.flags_response(seq, uid, modseq, row[2:8], condstore, uid in self.recent)
                )
        if not new_keywords <= self.keywords:
            self.keywords |= new_keywords
            out = [*self.flags_announcement(), *out]
        if new:
            self.uids.extend(new)
            out.append(responses.untagged(f"{len(self.uids)} EXISTS"))
            if self.keeps_recent:  # RFC 3501 §7.3.2: with a change of the mailbox's size
                out.append(responses.untagged(f"{self.recent_count} RECENT"))
        return out

    def announce_expunges(self, *, vanished: bool) -> list[bytes]:
        """EXPUNGE responses (highest sequence number first, so each number is still
        valid when read) or one VANISHED, and forget those UIDs."""
        gone = sorted(self.pending)
        self.pending.clear()
        if vanished:
            self._remove(gone)
            return [responses.untagged(f"VANISHED {responses.uid_set(gone)}")]
        seqs = sorted((s for u in gone if (s := self.seq_of(u)) is not None), reverse=True)
        self._remove(gone)
        return [responses.untagged(f"{seq} EXPUNGE") for seq in seqs]

    def _remove(self, gone: list[int]) -> None:
        if len(gone) > _REBUILD_AFTER:
            doomed = set(gone)
            self.uids = array("q", (u for u in self.uids if u not in doomed))
            return
        for uid in gone:
            index = bisect_left(self.uids, uid)
            if index < len(self.uids) and self.uids[index] == uid:
                del self.uids[index]

    def flags_announcement(self) -> list[bytes]:
        """FLAGS and PERMANENTFLAGS with the folder's keywords (RFC 9051 §7.3.5)."""
        keywords = sorted(self.keywords)
        flags = responses.flag_list([*responses.SYSTEM_FLAGS, *keywords])
        permanent = (
            "()"
            if self.readonly
            else responses.flag_list([*responses.SYSTEM_FLAGS, *keywords, "\\*"])
        )
        return [
            responses.untagged(f"FLAGS {flags}"),
            responses.untagged(f"OK [PERMANENTFLAGS {permanent}] Flags permitted"),
        ]

    @staticmethod
    def flags_response(
        seq: int, uid: int, modseq: int, flags: Iterable, condstore: bool, recent: bool = False
    ) -> bytes:
        """An unsolicited FETCH with FLAGS and UID (RFC 7162 §3.2.4 wants UID with
        QRESYNC; it never hurts), and MODSEQ once CONDSTORE is on (RFC 7162 §3.1.4)."""
        text = f"{seq} FETCH (UID {uid} FLAGS {responses.message_flags(*flags, recent=recent)}"
        if condstore:
            text += f" MODSEQ ({modseq})"
        return responses.untagged(text + ")")

    def note_sent(self, uid: int, modseq: int) -> None:
        self.sent[uid] = modseq
