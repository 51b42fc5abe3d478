"""IMAP sequence sets (RFC 9051 §9 "sequence-set") with "*" kept symbolic until resolved.

A set names message sequence numbers or UIDs; which one depends on the command (UID FETCH
versus FETCH), so the type does not know. "*" means "the largest number in use" and is only
turned into a number by `resolve`, against the mailbox's highest sequence number or UID.
"$" (RFC 5182 SEARCHRES) stands for the result saved by an earlier SEARCH ... RETURN (SAVE).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# RFC 9051 §9 "nz-number": non-zero unsigned 32-bit integer.
MAX_SEQ_NUMBER = 4_294_967_295
# Ranges in one set. A line of 64 KiB holds at most ~16k ranges ("1,3,5,..."), so this
# bound only matters for sets built in code; it keeps `resolve` linear in something small.
MAX_RANGES = 65_536

_SEQ_NUMBER = r"(?:[1-9][0-9]{0,9}|\*)"
_SEQ_SET = re.compile(rf"{_SEQ_NUMBER}(?::{_SEQ_NUMBER})?(?:,{_SEQ_NUMBER}(?::{_SEQ_NUMBER})?)*")


@dataclass(frozen=True, slots=True)
class SeqRange:
    """One "seq-number" or "seq-range" (RFC 9051 §9); None stands for "*"."""

    start: int | None
    end: int | None

    def bounds(self, largest: int) -> tuple[int, int]:
        """The inclusive (low, high) pair with "*" replaced by `largest`; "4:2" is "2:4"."""
        low = largest if self.start is None else self.start
        high = largest if self.end is None else self.end
        return (low, high) if low <= high else (high, low)

    def __str__(self) -> str:
        start = "*" if self.start is None else str(self.start)
        if self.start == self.end:
            return start
        return start + ":" + ("*" if self.end is None else str(self.end))


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """A parsed sequence-set: ranges in the client's order, or `saved` for "$"."""

    ranges: tuple[SeqRange, ...] = ()
    saved: bool = False

    @classmethod
    def parse(cls, text: str) -> SequenceSet:
        """Parse "1:4,7,9:*" or "$"; raise ValueError on anything else."""
        if text == "$":  # RFC 5182 §2.1 "seq-last-command"
            return cls(saved=True)
        if not _SEQ_SET.fullmatch(text):
            raise ValueError("invalid sequence set")
        items = text.split(",")
        if len(items) > MAX_RANGES:
            raise ValueError("too many ranges in sequence set")
        return cls(tuple(_parse_range(item) for item in items))

    @classmethod
    def from_numbers(cls, numbers: Iterable[int]) -> SequenceSet:
        """The shortest set naming exactly `numbers` (e.g. for COPYUID, VANISHED, SAVE)."""
        ranges: list[SeqRange] = []
        for number in sorted(set(numbers)):
            if not 0 < number <= MAX_SEQ_NUMBER:
                raise ValueError("sequence number out of range")
            if ranges and ranges[-1].end == number - 1:
                ranges[-1] = SeqRange(ranges[-1].start, number)
            else:
                ranges.append(SeqRange(number, number))
        return cls(tuple(ranges))

    @property
    def uses_star(self) -> bool:
        """True if any range mentions "*"."""
        return any(r.start is None or r.end is None for r in self.ranges)

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Sorted, merged, inclusive (low, high) intervals with "*" read as `largest`.

        Per RFC 9051 §9 "seq-range", "7:*" with 5 in use means 5:7. Nothing here checks
        that the numbers exist: for sequence numbers that is the session's job (BAD), for
        UIDs absent ones are simply skipped. "$" must be swapped for the saved result first.
        """
        if self.saved:
            raise ValueError("'$' must be replaced by the saved search result before resolving")
        intervals = sorted(r.bounds(largest) for r in self.ranges)
        merged: list[tuple[int, int]] = []
        for low, high in intervals:
            low = max(low, 1)
            if high < low:
                continue
            if merged and low <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], high))
            else:
                merged.append((low, high))
        return merged

    def contains(self, number: int, largest: int) -> bool:
        """Whether `number` is in the set, "*" being `largest`."""
        return any(low <= number <= high for low, high in self.resolve(largest))

    def numbers(self, largest: int) -> Iterator[int]:
        """Every number in the set, ascending, "*" being `largest`."""
        for low, high in self.resolve(largest):
            yield from range(low, high + 1)

    def __str__(self) -> str:
        return "$" if self.saved else ",".join(str(r) for r in self.ranges)


def _parse_range(item: str) -> SeqRange:
    first, _, second = item.partition(":")
    start = _parse_number(first)
    return SeqRange(start, _parse_number(second) if second else start)


def _parse_number(text: str) -> int | None:
    if text == "*":
        return None
    number = int(text)
    if number > MAX_SEQ_NUMBER:
        raise ValueError("sequence number out of range")
    return number
