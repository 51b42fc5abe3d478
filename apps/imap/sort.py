"""IMAP SORT (RFC 5256 §3) with SORT=DISPLAY (RFC 5957) over the messages a search matches.

Dates and sizes sort in SQL. Strings compare under i;unicode-casemap (RFC 5051), which no
SQL collation of SQLite provides, so a sort with a string key fetches the few columns it
needs and sorts in Python. Ties always go to the lower sequence number (RFC 5256 §3).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.db.models import F, OrderBy
from django.db.models.functions import Coalesce

from apps.imap.command_types import SortCriterion
from apps.imap.parse_search import SearchKey
from apps.imap.search import matching

Row = tuple[Any, ...]

# Keys SQL orders exactly. DATE is the sent date, or the internal date when the message
# has no readable Date: (RFC 5256 §2.2), as an instant (the zone is taken into account).
_SQL_ORDER: dict[str, F | Coalesce] = {
    "ARRIVAL": F("internal_date"),
    "DATE": Coalesce("sent_date", "internal_date"),
    "SIZE": F("size"),
}
# Columns each key needs when sorting in Python.
_COLUMNS = {
    "ARRIVAL": ("internal_date",),
    "DATE": ("sent_date", "internal_date"),
    "SIZE": ("size",),
    "SUBJECT": ("base_subject",),
    "FROM": ("from_addr",),
    "TO": ("to_addr",),
    "CC": ("cc_addr",),
    "DISPLAYFROM": ("from_name", "from_addr"),
    "DISPLAYTO": ("to_name", "to_addr"),
}


def run_sort(
    folder_id: int,
    criteria: Sequence[SortCriterion],
    key: SearchKey,
    *,
    uids: Sequence[int],
    saved: Sequence[int] | None = None,
    recent: Sequence[tuple[int, int]] = (),
) -> list[int]:
    """UIDs of the messages matching `key`, in the order `criteria` give (RFC 5256 §3)."""
    unknown = [c.key for c in criteria if c.key not in _COLUMNS]
    if unknown:
        raise ValueError(f"Unknown sort key {unknown[0]}")
    messages = matching(folder_id, key, uids=uids, saved=saved, recent=recent)
    if all(c.key in _SQL_ORDER for c in criteria):
        order = [_sql_order(c) for c in criteria]
        return list(messages.order_by(*order, "uid").values_list("uid", flat=True))
    columns = list(dict.fromkeys(col for c in criteria for col in _COLUMNS[c.key]))
    rows = list(messages.order_by("uid").values_list("uid", *columns))
    position = {column: index + 1 for index, column in enumerate(columns)}
    # Stable sorts, last criterion first, keep the UID (sequence) order among equals;
    # `reverse` keeps that stability too, so REVERSE never reverses the tie-break.
    for criterion in reversed(criteria):
        rows.sort(key=_sort_key(criterion.key, position), reverse=criterion.reverse)
    return [row[0] for row in rows]


def _sql_order(criterion: SortCriterion) -> OrderBy:
    expression = _SQL_ORDER[criterion.key]
    return expression.desc() if criterion.reverse else expression.asc()


def _sort_key(key: str, position: dict[str, int]) -> Callable[[Row], Any]:
    """The Python sort key for one RFC 5256 §3 / RFC 5957 §3 sort criterion."""

    def column(name: str) -> Callable[[Row], Any]:
        index = position[name]
        return lambda row: row[index]

    match key:
        case "ARRIVAL" | "SIZE":
            return column("internal_date" if key == "ARRIVAL" else "size")
        case "DATE":
            sent, arrived = column("sent_date"), column("internal_date")
            return lambda row: _date_key(sent(row), arrived(row))
        case "SUBJECT":
            subject = column("base_subject")  # RFC 5256 §2.1, computed at delivery
            return lambda row: casemap(subject(row))
        case "FROM" | "TO" | "CC":
            address = column(f"{key.lower()}_addr")
            return lambda row: casemap(mailbox(address(row)))
        case _:  # DISPLAYFROM, DISPLAYTO
            field = key.removeprefix("DISPLAY").lower()
            name, address = column(f"{field}_name"), column(f"{field}_addr")
            # RFC 5957 §3: the display name, or the addr-spec when there is none.
            return lambda row: casemap(name(row) or address(row))


def _date_key(sent: datetime | None, arrived: datetime) -> datetime:
    return sent or arrived


def mailbox(address: str) -> str:
    """RFC 5256 §3 FROM/TO/CC sort on the addr-mailbox: the part before the last "@"."""
    local, at, _ = address.rpartition("@")
    return local if at else address


def casemap(text: str) -> str:
    """A sort key under i;unicode-casemap (RFC 5051 §2): case mapped, then decomposed
    (NFKD). Upper case stands in for titlecase, which differs only for a few digraphs."""
    if text.isascii():
        return text.upper()
    return unicodedata.normalize("NFKD", text.upper())
