"""Read-only database work for IMAP sessions: plain synchronous functions, each run on a
worker thread with `mailhost.threads.in_thread`, never on the loop.

Writes go through `apps.mailstore.services`. The hot paths (a folder's UID list, flags of
a whole folder, changes since a modseq) use one raw SQL statement each, so a 100,000
message folder costs milliseconds, not the ORM's per-row objects.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ParamSpec, TypeVar, cast

from django.db import connection

from apps.mailstore import services
from apps.mailstore.models import Expunged, Folder, Message

P = ParamSpec("P")
R = TypeVar("R")

MESSAGE = Message._meta.db_table
EXPUNGED = Expunged._meta.db_table
FOLDER = Folder._meta.db_table
# Columns behind FLAGS, in responses.message_flags order.
FLAG_COLUMNS = "seen, answered, flagged, deleted, draft, keywords"
_JSON_COLUMNS = frozenset({"envelope", "body"})
_NULLS = ", ".join(["NULL"] * 6)  # where FLAG_COLUMNS are, in rows without them
# UIDs per SQL statement when fetching by a list of UIDs.
BATCH = 500


class FolderGone(Exception):
    """The selected folder was deleted by another session."""


@dataclass
class Snapshot:
    """What SELECT needs: the folder's identity and counters, its UIDs, its keywords
    (built by `index.open_folder`)."""

    folder_id: int
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str
    recent_uid: int  # the first UID no session has claimed as \Recent
    uids: array
    first_unseen_uid: int | None
    keywords: list[str]


@dataclass
class Changes:
    """Rows changed (or added) and UIDs expunged after the session's two watermarks."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)  # uid, modseq, flag columns
    expunged: list[tuple[int, int]] = field(default_factory=list)  # uid, modseq


def _rows(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def folder_uids(folder_id: int) -> array:
    """Every UID in the folder, ascending, as a compact array."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT uid FROM {MESSAGE} WHERE folder_id = %s ORDER BY uid", [folder_id])
        return array("q", [row[0] for row in cursor.fetchall()])


def folder_marks(folder_id: int) -> tuple[int, int]:
    """(UIDVALIDITY, HIGHESTMODSEQ) of the folder; FolderGone if it went away."""
    rows = _rows(f"SELECT uidvalidity, highestmodseq FROM {FOLDER} WHERE id = %s", [folder_id])
    if not rows:
        raise FolderGone
    return rows[0][0], rows[0][1]


def unclaimed(folder_id: int) -> tuple[int, int]:
    """The UIDs no session has claimed as \\Recent yet (apps.imap.recent), from `low` up
    to, not including, `high`; FolderGone if the folder went away."""
    rows = _rows(f"SELECT recent_uid, uidnext FROM {FOLDER} WHERE id = %s", [folder_id])
    if not rows:
        raise FolderGone
    return rows[0][0], rows[0][1]


def folders_changed_since(since: datetime, min_uidnext: int) -> list[tuple[int, int]]:
    """(id, HIGHESTMODSEQ) of the folders changed at or after `since` whose UIDNEXT is
    above `min_uidnext` (so that may hold that many messages)."""
    # The ORM, not plain SQL: it stores and compares datetimes the way each backend needs.
    changed = Folder.objects.filter(changed_at__gte=since, uidnext__gt=min_uidnext)
    return list(changed.values_list("id", "highestmodseq"))


def message_count(folder_id: int) -> int:
    return _rows(f"SELECT COUNT(*) FROM {MESSAGE} WHERE folder_id = %s", [folder_id])[0][0]


def highest_expunge_modseq(folder_id: int) -> int:
    rows = _rows(f"SELECT MAX(modseq) FROM {EXPUNGED} WHERE folder_id = %s", [folder_id])
    return rows[0][0] or 0


def changes_since(folder_id: int, message_mark: int, expunge_mark: int) -> Changes:
    """What changed after the watermarks: rows with a higher modseq (new or re-flagged)
    and tombstones with a higher modseq, in one statement (this runs before most tagged
    replies). Raises FolderGone if the folder went away."""
    found = _rows(
        f"SELECT 0, uid, modseq, {FLAG_COLUMNS} FROM {MESSAGE}"
        " WHERE folder_id = %s AND modseq > %s"
        f" UNION ALL SELECT 1, uid, modseq, {_NULLS} FROM {EXPUNGED}"
        " WHERE folder_id = %s AND modseq > %s"
        f" UNION ALL SELECT 2, id, 0, {_NULLS} FROM {FOLDER} WHERE id = %s",
        [folder_id, message_mark, folder_id, expunge_mark, folder_id],
    )
    changes = Changes()
    exists = False
    for row in found:
        if row[0] == 0:
            changes.rows.append(row[1:])
        elif row[0] == 1:
            changes.expunged.append((row[1], row[2]))
        else:
            exists = True
    if not exists:
        raise FolderGone
    changes.rows.sort(key=lambda row: row[0])
    return changes


# The index's flag bits (index.flag_bits: seen 1, answered 2, flagged 4, deleted 8, draft 16),
# computed by the database.
FLAG_BITS = " + ".join(
    f"CASE WHEN {column} THEN {bit} ELSE 0 END"
    for column, bit in (("seen", 1), ("answered", 2), ("flagged", 4), ("deleted", 8), ("draft", 16))
)


def index_rows(folder_id: int) -> tuple[list[tuple[int, int, int]], dict[int, str]]:
    """What the index loads for a folder: (uid, modseq, flag bits) of every message by
    UID, and the keywords of those that have any. Both come from indexes alone
    (message_flags, message_keywords), never the wide rows: integers for 100,000
    messages cost little more than reading them."""
    rows = _rows(
        f"SELECT uid, modseq, {FLAG_BITS} FROM {MESSAGE} WHERE folder_id = %s ORDER BY uid",
        [folder_id],
    )
    keywords = _rows(
        f"SELECT uid, keywords FROM {MESSAGE} WHERE folder_id = %s AND NOT (keywords = ' ')",
        [folder_id],
    )
    return cast(list[tuple[int, int, int]], rows), dict(keywords)


def changed_rows(folder_id: int, modseq: int) -> list[tuple[Any, ...]]:
    """(uid, modseq, flag columns) of messages changed or added after `modseq`, by UID."""
    return _rows(
        f"SELECT uid, modseq, {FLAG_COLUMNS} FROM {MESSAGE}"
        " WHERE folder_id = %s AND modseq > %s ORDER BY uid",
        [folder_id, modseq],
    )


def expunged_since(folder_id: int, modseq: int) -> list[int]:
    """UIDs expunged after `modseq` (RFC 7162 §3.2.5.2 VANISHED (EARLIER)), ascending."""
    rows = _rows(
        f"SELECT DISTINCT uid FROM {EXPUNGED} WHERE folder_id = %s AND modseq > %s ORDER BY uid",
        [folder_id, modseq],
    )
    return [row[0] for row in rows]


def flags_of(folder_id: int, uids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
    """uid -> (modseq, flag columns) for these UIDs (for STORE's FETCH responses)."""
    wanted = set(uids)
    found: dict[int, tuple[Any, ...]] = {}
    for sql, params in _batched(folder_id, uids, f"uid, modseq, {FLAG_COLUMNS}"):
        for row in _rows(sql, params):
            if row[0] in wanted:  # a dense run is read as a UID range, gaps and all
                found[row[0]] = row[1:]
    return found


def message_rows(
    folder_id: int, uids: Sequence[int], columns: Sequence[str]
) -> list[dict[str, Any]]:
    """Rows for FETCH, in UID order: the named Message columns (uid always included),
    JSON columns decoded."""
    names = list(dict.fromkeys(["uid", *columns]))
    wanted = set(uids)
    out: list[dict[str, Any]] = []
    for sql, params in _batched(folder_id, uids, ", ".join(_quoted(n) for n in names)):
        for values in _rows(sql + " ORDER BY uid", params):
            if values[0] in wanted:
                out.append(dict(zip(names, values, strict=True)))
    for found in out:
        for name in _JSON_COLUMNS.intersection(found):
            if isinstance(found[name], str | bytes):
                found[name] = json.loads(found[name])
    return out


def _quoted(column: str) -> str:
    return connection.ops.quote_name(column)


def flag_rows(folder_id: int, uids: Sequence[int]) -> list[tuple[Any, ...]]:
    """(uid, modseq, flag columns) in UID order: the fast path of FETCH (FLAGS)."""
    wanted = set(uids)
    out: list[tuple[Any, ...]] = []
    for sql, params in _batched(folder_id, uids, f"uid, modseq, {FLAG_COLUMNS}"):
        out.extend(row for row in _rows(sql + " ORDER BY uid", params) if row[0] in wanted)
    return out


def _chunks(uids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(uids), BATCH):
        yield uids[start : start + BATCH]


def _batched(folder_id: int, uids: Sequence[int], columns: str) -> Iterable[tuple[str, list[Any]]]:
    """SQL over `uids` (ascending) in pieces: a range for dense runs, an IN list else."""
    base = f"SELECT {columns} FROM {MESSAGE} WHERE folder_id = %s"
    if len(uids) > 20 * BATCH and uids[-1] - uids[0] < 2 * len(uids):
        yield base + " AND uid BETWEEN %s AND %s", [folder_id, uids[0], uids[-1]]
        return
    for chunk in _chunks(uids):
        if chunk[-1] - chunk[0] < 4 * len(chunk):
            yield base + " AND uid BETWEEN %s AND %s", [folder_id, chunk[0], chunk[-1]]
        else:
            marks = ", ".join(["%s"] * len(chunk))
            yield base + f" AND uid IN ({marks})", [folder_id, *chunk]


def list_folders(user_id: int) -> list[Folder]:
    return list(
        Folder.objects.filter(user_id=user_id).only("id", "name", "special_use").order_by("name")
    )


def mailbox_tree(user_id: int) -> tuple[list[Folder], set[str]]:
    """The folders and the subscribed names, for LIST and LSUB."""
    return list_folders(user_id), set(services.subscribed_names(user_id))


def folder_id_of(user_id: int, name: str) -> int:
    """The folder's id; raises services.FolderNotFound."""
    return services.folder_ids(user_id, name)[0]
