"""Content-addressed blob store: a message's bytes, written once, named by their SHA-256.

A blob is written to a temporary file, fsynced, renamed into place and its directory
fsynced, so once `put` returns the bytes survive a crash; a crash before that leaves at
most a stray temporary file, never a half blob under a real name. Identical messages
(one delivery to ten users, a COPY) share one file.

Small messages (up to `DATABASE_LIMIT`, most mail) are kept in the database instead, in a
`StoredBlob` row under the same key, written by the transaction that files the message
(`keep_in_database`): durable with that commit, where a file costs an inode and two
fsyncs of its own (bench/store_deliver.py went from 300-370 to about 1,400 deliveries/s
on SQLite without them). Readers look for the file first, then the row.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import connection
from django.utils import timezone

CHUNK = 1024 * 1024
# Messages up to this size are kept in the database (`keep_in_database`), as SMTP keeps
# them in their Incoming row until they are filed (inbound.INLINE_LIMIT).
DATABASE_LIMIT = 128 * 1024
KEY = '"key"'  # the StoredBlob column, quoted: KEY is a keyword in SQL
# Threads that write blobs for `put_soon`; fsync releases the GIL, so they overlap the
# caller's parsing and database statements.
WRITER_THREADS = 4
_writers = ThreadPoolExecutor(max_workers=WRITER_THREADS, thread_name_prefix="blob-writer")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        # One level of 256 directories: they all exist after the first few hundred
        # messages, so a new blob costs two fsyncs (file, directory), not four.
        return self.root / key[:2] / key

    def put(self, data: bytes) -> str:
        writer = self.writer()
        writer.write(data)
        return writer.commit()

    def put_soon(self, data: bytes) -> tuple[str, Future[str]]:
        """The key of `data` now, and a future that is done once `put` would have
        returned: the caller overlaps the two fsyncs with other work, and must wait for
        the future before anything naming the key is committed."""
        return hashlib.sha256(data).hexdigest(), _writers.submit(self.put, data)

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def open(self, key: str) -> BinaryIO:
        try:
            return self.path(key).open("rb")
        except FileNotFoundError:
            return io.BytesIO(_stored_data(key))

    def read(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return _stored_data(key)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        with self.open(key) as f:
            f.seek(start)
            return f.read(length)

    def iter_chunks(self, key: str, size: int = CHUNK) -> Iterator[bytes]:
        with self.open(key) as f:
            while chunk := f.read(size):
                yield chunk

    def exists(self, key: str) -> bool:
        return self.path(key).exists() or _stored(key) is not None

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)


class BlobWriter:
    """Streams bytes into a temporary file while hashing, so big messages stay off the heap."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.hash = hashlib.sha256()
        self.size = 0
        fd, name = tempfile.mkstemp(dir=store.tmp)
        self.file = os.fdopen(fd, "wb")
        self.tmp_path = Path(name)

    def write(self, data: bytes) -> None:
        self.hash.update(data)
        self.size += len(data)
        self.file.write(data)

    def commit(self) -> str:
        """Make the blob durable under its hash and return that key."""
        self.file.flush()
        key = self.hash.hexdigest()
        final = self.store.path(key)
        if final.exists():
            try:
                # A fresh mtime keeps the stored copy from the collector until our row
                # commits (maintenance.py); if it was collected just now, write it again.
                os.utime(final)
                self.abort()
                return key
            except FileNotFoundError:
                pass
        os.fsync(self.file.fileno())
        self.file.close()
        created: list[Path] = []
        try:
            os.replace(self.tmp_path, final)
        except FileNotFoundError:  # the first blob under this prefix: make its directory
            created = _makedirs(final.parent)
            os.replace(self.tmp_path, final)
        _fsync_dir(final.parent)
        for directory in created:
            _fsync_dir(directory.parent)
        return key

    def abort(self) -> None:
        self.file.close()
        self.tmp_path.unlink(missing_ok=True)


def in_database(size: int) -> bool:
    """Whether a new message of `size` bytes is kept in the database (not in a file)."""
    return size <= DATABASE_LIMIT


def keep_in_database(key: str, data: bytes) -> None:
    """Store a small message's bytes in the caller's transaction, which must be the one
    that commits the rows naming `key`. Storing bytes already there refreshes their
    `stored_at`, which keeps the collector away until the rows commit (as `os.utime`
    does for a file); on PostgreSQL the update also locks the row, and a collector's
    DELETE waiting on it re-reads the fresh `stored_at` and leaves the row alone."""
    with connection.cursor() as cursor:  # plain SQL: this runs for every new message
        cursor.execute(keep_statement("%s", "%s", "%s"), [key, data, timezone.now()])


def keep_statement(key: str, data: str, stored_at: str) -> str:
    """The upsert `keep_in_database` runs, with these placeholders (PostgreSQL's delivery
    statement runs it as a CTE: pgdelivery)."""
    from apps.mailstore.models import StoredBlob

    table = connection.ops.quote_name(StoredBlob._meta.db_table)
    return (
        f"INSERT INTO {table} ({KEY}, data, stored_at) VALUES ({key}, {data}, {stored_at})"
        f" ON CONFLICT ({KEY}) DO UPDATE SET stored_at = excluded.stored_at"
    )


def _stored(key: str) -> bytes | None:
    from apps.mailstore.models import StoredBlob

    table = connection.ops.quote_name(StoredBlob._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT data FROM {table} WHERE {KEY} = %s", [key])
        row = cursor.fetchone()
    return None if row is None else bytes(row[0])


def _stored_data(key: str) -> bytes:
    data = _stored(key)
    if data is None:
        raise FileNotFoundError(f"blob {key} is neither a file nor a stored row")
    return data


def _makedirs(path: Path) -> list[Path]:
    """Create missing directories; return those created, so their parents get fsynced."""
    created = []
    for directory in reversed([path, *path.parents]):
        if not directory.exists():
            directory.mkdir(exist_ok=True)
            created.append(directory)
    return created


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_store: BlobStore | None = None


def blob_store() -> BlobStore:
    global _store
    if _store is None or _store.root != settings.BLOB_DIR:
        _store = BlobStore(settings.BLOB_DIR)
    return _store
