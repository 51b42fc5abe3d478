"""UID sets as sorted, merged ranges, and the SQL filter for them.

IMAP hands over sets like 1:100000; expanding them to lists would blow past SQLite's
limit on query parameters, so the store filters by ranges instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q

UidRanges = list[tuple[int, int]]


def to_ranges(uids: Iterable[int]) -> UidRanges:
    """Merge UIDs into sorted, non-overlapping inclusive ranges."""
    ranges: UidRanges = []
    for uid in sorted(set(uids)):
        if ranges and uid == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], uid)
        else:
            ranges.append((uid, uid))
    return ranges


def normalise(ranges: Iterable[tuple[int, int]]) -> UidRanges:
    """Sort and merge ranges given in any order (IMAP allows 5:2)."""
    merged: UidRanges = []
    for lo, hi in sorted((min(a, b), max(a, b)) for a, b in ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def uid_filter(ranges: Iterable[tuple[int, int]], field: str = "uid") -> Q:
    """A Q matching any UID in `ranges`; matches nothing for an empty set."""
    query = Q(pk__in=[])
    for lo, hi in normalise(ranges):
        query |= Q(**{f"{field}__range": (lo, hi)}) if lo != hi else Q(**{field: lo})
    return query


# Past this many ranges the OR chain gets too deep for SQLite's expression limit (1000);
# such sets are filtered by their overall span in SQL and exactly in Python.
MAX_SQL_RANGES = 100


def contains(ranges: UidRanges, uid: int) -> bool:
    """Whether `uid` lies in normalised `ranges` (binary search)."""
    lo, hi = 0, len(ranges)
    while lo < hi:
        mid = (lo + hi) // 2
        if ranges[mid][1] < uid:
            lo = mid + 1
        else:
            hi = mid
    return lo < len(ranges) and ranges[lo][0] <= uid


def uid_sql(ranges: UidRanges, column: str = "uid") -> tuple[str, list[int]]:
    """The SQL condition (and its parameters) for UIDs in normalised `ranges`: each range
    when there are few, else their whole span (callers then check `contains` per row)."""
    if not ranges:
        return "1 = 0", []
    if len(ranges) > MAX_SQL_RANGES:
        ranges = [(ranges[0][0], ranges[-1][1])]
    terms, params = [], []
    for lo, hi in ranges:
        if lo == hi:
            terms.append(f"{column} = %s")
            params.append(lo)
        else:
            terms.append(f"{column} BETWEEN %s AND %s")
            params += [lo, hi]
    return "(" + " OR ".join(terms) + ")", params


def span_filter(ranges: UidRanges, field: str = "uid") -> Q:
    """The SQL side of a large set: everything between its first and last UID."""
    if not ranges:
        return Q(pk__in=[])
    return Q(**{f"{field}__range": (ranges[0][0], ranges[-1][1])})
