"""The \\Recent flag of RFC 3501 (§2.3.2): which messages are recent to one session.

A folder row keeps the first UID no session has claimed (Folder.recent_uid, as Dovecot
keeps its first_recent_uid). A session that selects the folder read-write claims the
UIDs from there up to UIDNEXT through the store (services.claim_recent), at SELECT and
whenever new messages show up, and those messages are \\Recent to it alone. A read-only
session (EXAMINE) only looks: RFC 3501 §6.3.2 says EXAMINE "MUST NOT cause messages to
lose the \\Recent flag", so it sees the unclaimed messages as recent and leaves them for
the next session that selects. IMAP4rev2 deprecates \\Recent (RFC 9051 §2.3.2, Appendix E
item 12): such a session neither claims nor shows it.

The UIDs are kept as ranges: a claim is one contiguous range, so a session holds a few
of them however many messages they cover.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from apps.imap import query
from apps.mailstore import groupcommit, services, uidsets


class RecentUids:
    """The UIDs recent to one session, as sorted inclusive ranges."""

    def __init__(self) -> None:
        self.ranges: uidsets.UidRanges = []

    def add(self, low: int, high: int) -> None:
        """Add the UIDs from `low` up to, not including, `high`."""
        if low < high:
            self.ranges = uidsets.normalise([*self.ranges, (low, high - 1)])

    def __contains__(self, uid: object) -> bool:
        return bool(self.ranges) and isinstance(uid, int) and uidsets.contains(self.ranges, uid)

    def marks(self, uids: list[int]) -> bytearray:
        """1 for each of `uids` that is recent, else 0: a bisection per range, where a
        membership test per message would add a sixth to FETCH 1:* (FLAGS)."""
        if uids != sorted(uids):  # "$" saved by SORT ... RETURN (SAVE) is in sort order
            return bytearray(uid in self for uid in uids)
        found = bytearray(len(uids))
        for low, high in self.ranges:
            start, end = bisect_left(uids, low), bisect_right(uids, high)
            found[start:end] = b"\x01" * (end - start)
        return found

    def count(self, uids: Sequence[int]) -> int:
        """How many of `uids` (ascending) are recent: a bisection per range, not a step
        per message."""
        return sum(bisect_right(uids, high) - bisect_left(uids, low) for low, high in self.ranges)


def claim(folder_id: int) -> tuple[int, int]:
    """Worker thread: claim what no session has (see services.claim_recent). Read first,
    so a session with nothing to claim (the usual case) opens no write transaction."""
    low, high = query.unclaimed(folder_id)
    if low >= high:
        return high, high
    try:
        return groupcommit.run(lambda: services.claim_recent(folder_id))
    except services.FolderNotFound:
        raise query.FolderGone from None
