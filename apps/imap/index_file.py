"""The folder index on disk, so that the first SELECT after a restart reads one file and
catches up from its modseq watermarks instead of loading every row (Dovecot keeps its
`dovecot.index` for the same reason).

A file holds what `index.Entry` holds for one folder: UIDs, modseqs and flag bits as
packed arrays, the keywords, the two watermarks, and the folder's UIDVALIDITY. It is a
cache: the store stays the truth, and a file is only used when it can be brought up to
date by the same rule as the in-memory index (rows with a modseq above the message
watermark, tombstones above the expunge watermark; the store writes a tombstone for every
row it removes and never prunes them). A file from another UIDVALIDITY, one whose
watermarks are above the folder's HIGHESTMODSEQ (a database restored from an older
backup), or one that fails its checksum is ignored, and the folder loads from the
database as if there were no file.

Files are written with a rename and no fsync: losing one costs a slower SELECT, nothing
else. The directory is the IMAP_INDEX_DIR setting (None turns files off), with one
subdirectory per database, so a data directory pointed at another database never reads
the first one's files.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
import threading
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

from apps.mailstore.models import Folder

MAGIC = b"MHIX1\n"
# Folders smaller than this load from the database in a few milliseconds: no file.
MIN_MESSAGES = 1000
# header: UIDVALIDITY, message watermark, expunge watermark, message count, keyword bytes
_HEADER = struct.Struct("<qqqqq")
_CRC = struct.Struct("<I")


@dataclass
class Saved:
    """One folder's index as written."""

    uidvalidity: int
    message_mark: int
    expunge_mark: int
    uids: array
    modseqs: array
    flags: array
    keywords: dict[int, str]

    def usable(self, uidvalidity: int, highestmodseq: int) -> bool:
        """Whether the store's history for the folder continues from this file."""
        return (
            self.uidvalidity == uidvalidity
            and self.message_mark <= highestmodseq
            and self.expunge_mark <= highestmodseq
        )


def dump(saved: Saved) -> bytes:
    keywords = json.dumps(saved.keywords, separators=(",", ":")).encode()
    count = len(saved.uids)
    body = b"".join(
        [
            _HEADER.pack(
                saved.uidvalidity, saved.message_mark, saved.expunge_mark, count, len(keywords)
            ),
            _native(saved.uids).tobytes(),
            _native(saved.modseqs).tobytes(),
            saved.flags.tobytes(),
            keywords,
        ]
    )
    return MAGIC + body + _CRC.pack(zlib.crc32(body))


def parse(data: bytes) -> Saved:
    """The index in `data`; ValueError when it is not a whole, well-formed file."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _HEADER.size + _CRC.size:
        raise ValueError("not an index file")
    body, (crc,) = data[len(MAGIC) : -_CRC.size], _CRC.unpack(data[-_CRC.size :])
    if zlib.crc32(body) != crc:
        raise ValueError("checksum mismatch")
    uidvalidity, message_mark, expunge_mark, count, keyword_bytes = _HEADER.unpack_from(body)
    if len(body) != _HEADER.size + 17 * count + keyword_bytes:
        raise ValueError("length mismatch")
    at = _HEADER.size
    uids, modseqs, flags = array("q"), array("q"), array("B")
    uids.frombytes(body[at : at + 8 * count])
    modseqs.frombytes(body[at + 8 * count : at + 16 * count])
    flags.frombytes(body[at + 16 * count : at + 17 * count])
    if sys.byteorder != "little":
        uids.byteswap()
        modseqs.byteswap()
    keywords = json.loads(body[at + 17 * count :])
    return Saved(
        uidvalidity,
        message_mark,
        expunge_mark,
        uids,
        modseqs,
        flags,
        {int(uid): text for uid, text in keywords.items()},
    )


def read(folder_id: int) -> Saved | None:
    """The folder's saved index, or None when there is none or it is damaged."""
    path = _path(folder_id)
    if path is None:
        return None
    try:
        return parse(path.read_bytes())
    except (OSError, ValueError):
        return None


def message_mark(folder_id: int) -> int | None:
    """The message watermark of the folder's file (its header alone), None without one."""
    path = _path(folder_id)
    if path is None:
        return None
    try:
        with path.open("rb") as file:
            head = file.read(len(MAGIC) + _HEADER.size)
    except OSError:
        return None
    if len(head) < len(MAGIC) + _HEADER.size or not head.startswith(MAGIC):
        return None
    return _HEADER.unpack_from(head, len(MAGIC))[1]


def write(folder_id: int, saved: Saved) -> None:
    """Replace the folder's file; a failure to write is not an error (it is a cache)."""
    path = _path(folder_id)
    if path is None or len(saved.uids) < MIN_MESSAGES:
        return
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(dump(saved))
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)


def remove(folder_id: int) -> None:
    path = _path(folder_id)
    if path is not None:
        path.unlink(missing_ok=True)


def prune() -> int:
    """Remove the files of folders that no longer exist (deleted while no session of
    this process had them open); returns how many. The IMAP listener runs this once at
    start."""
    directory = _directory()
    if directory is None or not directory.is_dir():
        return 0
    files = {int(f.stem): f for f in directory.glob("*.index") if f.stem.isdigit()}
    ids = list(files)
    with connection.cursor() as cursor:
        for start in range(0, len(ids), 500):  # under SQLite's parameter limit
            chunk = ids[start : start + 500]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"SELECT id FROM {Folder._meta.db_table} WHERE id IN ({marks})", chunk)
            for (found,) in cursor.fetchall():
                files.pop(found)
    for gone in files.values():
        gone.unlink(missing_ok=True)
    return len(files)


def enabled() -> bool:
    return settings.IMAP_INDEX_DIR is not None


def _path(folder_id: int) -> Path | None:
    directory = _directory()
    return None if directory is None else directory / f"{folder_id}.index"


def _directory() -> Path | None:
    """This database's files: one directory per database the data directory served."""
    root = settings.IMAP_INDEX_DIR
    if root is None:
        return None
    db = connection.settings_dict
    identity = f"{connection.vendor}|{db['NAME']}|{db.get('HOST', '')}|{db.get('PORT', '')}"
    return Path(root) / hashlib.sha256(identity.encode()).hexdigest()[:16]


def _native(values: array) -> array:
    """`values` in the file's byte order (little-endian)."""
    if sys.byteorder == "little":
        return values
    swapped = array(values.typecode, values)
    swapped.byteswap()
    return swapped
