"""Housekeeping for the store: blobs that nothing refers to any more.

A blob is referred to by a row of any model with a `blob_key` field: messages in folders,
and the queues on the way to them (accepted mail waiting to be filed, outbound mail waiting
to be relayed). The collector and the writers meet only in the file system, so the order of
steps matters:

- a writer that finds its blob already stored refreshes the blob's mtime before it commits
  a row naming it (`BlobWriter.commit`), and writes the blob again if it has just vanished;
- the collector only takes blobs older than `ORPHAN_AGE_SECONDS` that no row names, moves
  each aside first and looks at its mtime again, so a writer that refreshed it in between
  gets it back.

Small blobs kept in the database (`StoredBlob`) follow the same rule inside it: a writer
stores the bytes again in the transaction that names them, refreshing `stored_at`, and the
collector's single DELETE takes only rows whose `stored_at` is old and that no row names.
On PostgreSQL a DELETE that meets a row a writer is refreshing waits for that writer, then
re-checks the new `stored_at` and leaves it; on SQLite writers take turns.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from django.apps import apps
from django.db import connection
from django.utils import timezone

from apps.mailstore.blobs import KEY, blob_store
from apps.mailstore.models import Message, StoredBlob

# A blob is written before its row commits; only blobs older than this can be orphans.
ORPHAN_AGE_SECONDS = 3600


def collect_unreferenced_blobs(min_age: float = ORPHAN_AGE_SECONDS) -> int:
    """Delete old blobs that no row names; returns how many went."""
    store = blob_store()
    cutoff = time.time() - min_age
    # Read before the per-blob checks: a key that moves from a queue into a folder in
    # between is still caught by the folder check that follows.
    queued = keys_in_queues()
    removed = 0
    for path in store.root.glob("??/*"):
        if _older_than(path, cutoff) and path.name not in queued and not _filed(path.name):
            removed += _discard(path, store.tmp / f"collect-{path.name}", cutoff)
    for path in store.tmp.iterdir():
        if _older_than(path, cutoff):
            path.unlink(missing_ok=True)
    return removed + _collect_stored(min_age)


def _collect_stored(min_age: float) -> int:
    """Delete old StoredBlob rows that no row of any model with a `blob_key` names."""
    quote = connection.ops.quote_name
    table = quote(StoredBlob._meta.db_table)
    unnamed = " ".join(
        f"AND NOT EXISTS (SELECT 1 FROM {quote(model._meta.db_table)} r"
        f" WHERE r.blob_key = {table}.{KEY})"
        for model in _naming_models()
    )
    cutoff = timezone.now() - timedelta(seconds=min_age)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE stored_at < %s {unnamed}", [cutoff])
        return cursor.rowcount


def _naming_models() -> list:
    return [m for m in apps.get_models() if any(f.name == "blob_key" for f in m._meta.fields)]


def keys_in_queues() -> set[str]:
    """Blob keys named by every model with a `blob_key` except messages in folders: the
    queues are small, and a new one is protected without being listed here."""
    keys: set[str] = set()
    for model in _naming_models():
        if model is not Message:
            keys.update(model._default_manager.values_list("blob_key", flat=True))
    return keys


def _filed(key: str) -> bool:
    return Message.objects.filter(blob_key=key).exists()


def _older_than(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def _discard(path: Path, aside: Path, cutoff: float) -> int:
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return 0
    if not _older_than(aside, cutoff):  # refreshed by a writer a moment ago: it stays
        os.replace(aside, path)
        return 0
    aside.unlink(missing_ok=True)
    return 1
