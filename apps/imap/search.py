"""IMAP SEARCH (RFC 9051 §6.4.4, RFC 3501 §6.4.4) compiled into one SQL query.

Each key of the parsed program (apps.imap.parse_search) becomes a Django Q over Message:
flags are boolean columns and the keyword list, dates and sizes column ranges, sequence
and UID sets UID ranges, MODSEQ (RFC 7162 §3.1.5) the modseq column, and text keys
subqueries on the full-text index (apps.mailstore.fulltext). NOT, OR and AND combine the
Qs, so any program, however nested, is one SELECT over the folder.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from functools import reduce
from operator import and_
from typing import Literal

from django.db import connection
from django.db.models import BigIntegerField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from apps.imap.parse_search import (
    SearchAll,
    SearchAnd,
    SearchBody,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSeq,
    SearchSize,
    SearchText,
    SearchUid,
)
from apps.imap.seqset import SequenceSet
from apps.mailstore import fulltext, uidsets
from apps.mailstore.models import Message

ALWAYS = Q(pk__isnull=False)
NEVER = Q(pk__in=[])
# System flags by lower-cased name (flags are case-insensitive, RFC 9051 §2.3.2).
_FLAG_COLUMNS = {flag.lower(): column for flag, column in Message.SYSTEM_FLAGS.items()}


def run_search(
    folder_id: int,
    key: SearchKey,
    *,
    uids: Sequence[int],
    saved: Sequence[int] | None = None,
    recent: Sequence[tuple[int, int]] = (),
) -> list[int]:
    """UIDs of the messages matching `key`, ascending.

    `uids` is the session's view of the folder (sequence number n is `uids[n - 1]`); only
    those messages can match, so mail that arrived since the last sync has no sequence
    number to report yet. `saved` is the RFC 5182 SEARCHRES result that "$" names;
    `recent` the UIDs that are \\Recent to the session (RECENT, NEW, OLD).
    """
    messages = matching(folder_id, key, uids=uids, saved=saved, recent=recent)
    return list(messages.order_by("uid").values_list("uid", flat=True))


def matching(
    folder_id: int,
    key: SearchKey,
    *,
    uids: Sequence[int],
    saved: Sequence[int] | None = None,
    recent: Sequence[tuple[int, int]] = (),
) -> QuerySet[Message]:
    """The folder's messages known to the session that match `key` (for SORT and THREAD)."""
    if not uids:
        return Message.objects.none()
    condition = _Compiler(folder_id, uids, saved or (), recent).compile(key)
    # UIDs only grow (RFC 9051 §2.3.1.1): every row up to the session's last UID is one it
    # knows, unless expunged since.
    return Message.objects.filter(folder_id=folder_id, uid__lte=uids[-1]).filter(condition)


class _Compiler:
    """Turns one search program into a Q, given the session's numbering."""

    def __init__(
        self,
        folder_id: int,
        uids: Sequence[int],
        saved: Sequence[int],
        recent: Sequence[tuple[int, int]] = (),
    ) -> None:
        self.folder_id = folder_id
        self.uids = uids
        self.saved = saved
        self.recent = list(recent)

    def compile(self, key: SearchKey) -> Q:
        match key:
            case SearchAll():
                return ALWAYS
            case SearchFlag(flag, present):
                found = self._recent() if flag.lower() == "\\recent" else _flag(flag)
                return found if present else ~found
            case SearchHeader(field, value):
                return fulltext.header_contains(self.folder_id, field, value)
            case SearchBody(value):
                return fulltext.body_contains(self.folder_id, value)
            case SearchText(value):
                return fulltext.text_contains(self.folder_id, value)
            case SearchDate(op, day, sent):
                return self._date(op, day, sent)
            case SearchSize(op, size):
                return Q(size__gt=size) if op == "larger" else Q(size__lt=size)
            case SearchSeq(numbers):
                return self._uids_in(self._seq_ranges(numbers))
            case SearchUid(numbers):
                return self._uids_in(self._uid_ranges(numbers))
            case SearchModSeq(modseq):
                # RFC 7162 §3.1.5: ">= modseq". There is one modseq per message, not per
                # flag, so an entry name narrows nothing (allowed by §3.1.5).
                return Q(modseq__gte=modseq)
            case SearchNot(inner):
                return ~self.compile(inner)
            case SearchOr(left, right):
                return self.compile(left) | self.compile(right)
            case SearchAnd(keys):
                return reduce(and_, (self.compile(k) for k in keys), ALWAYS)
        raise TypeError(f"Unknown search key {key!r}")

    def _recent(self) -> Q:
        """RFC 3501 §6.4.4 RECENT (and NEW, OLD): the session's own \\Recent messages."""
        return self._uids_in(self.recent) if self.recent else NEVER

    def _date(self, op: Literal["before", "on", "since"], day: date, sent: bool) -> Q:
        if sent:
            return fulltext.sent_day_is(self.folder_id, op, day)
        # RFC 9051 §6.4.4: the internal date's day "disregarding time and timezone"; the
        # store keeps an instant, so days are the server's (settings.TIME_ZONE).
        start, end = _midnight(day), _midnight(day + timedelta(days=1))
        if op == "before":
            return Q(internal_date__lt=start)
        if op == "on":
            return Q(internal_date__gte=start, internal_date__lt=end)
        return Q(internal_date__gte=start)

    def _seq_ranges(self, numbers: SequenceSet) -> uidsets.UidRanges:
        """Sequence numbers as UID ranges: seq a..b is uids[a-1]..uids[b-1], and no other
        message lies between those UIDs. Numbers past the last message match nothing."""
        if numbers.saved:
            return uidsets.to_ranges(self.saved)  # RFC 5182 §2.1: "$" holds UIDs
        count = len(self.uids)
        return [
            (self.uids[low - 1], self.uids[min(high, count) - 1])
            for low, high in numbers.resolve(count)
            if low <= count
        ]

    def _uid_ranges(self, numbers: SequenceSet) -> uidsets.UidRanges:
        if numbers.saved:
            return uidsets.to_ranges(self.saved)
        return numbers.resolve(self.uids[-1])  # "*" is the largest UID in use (RFC 9051 §9)

    def _uids_in(self, ranges: uidsets.UidRanges) -> Q:
        if len(ranges) <= uidsets.MAX_SQL_RANGES:
            return uidsets.uid_filter(ranges)
        # Too many ranges for one OR chain: list the session's UIDs inside them instead.
        known: list[int] = []
        for low, high in uidsets.normalise(ranges):
            known.extend(self.uids[bisect_left(self.uids, low) : bisect_right(self.uids, high)])
        return Q(uid__in=_uid_list(known))


def _flag(flag: str) -> Q:
    """Messages with `flag` set: a system flag column, or the keyword in the list."""
    lowered = flag.lower()
    if lowered in _FLAG_COLUMNS:
        return Q(**{_FLAG_COLUMNS[lowered]: True})
    # Keywords are stored " a b " so a whole word matches; case-insensitive like flags.
    return Q(keywords__icontains=f" {flag} ")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_default_timezone())


def _uid_list(uids: list[int]) -> RawSQL:
    """A subquery yielding these UIDs, as one parameter (no limit on their number)."""
    if connection.vendor == "sqlite":
        return RawSQL("SELECT value FROM json_each(%s)", [json.dumps(uids)], BigIntegerField())
    return RawSQL("SELECT unnest(%s::bigint[])", [uids], BigIntegerField())
