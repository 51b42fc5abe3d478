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
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from django.apps import apps

from apps.mailstore.blobs import blob_store
from apps.mailstore.models import Message

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
    return removed


def keys_in_queues() -> set[str]:
    """Blob keys named by every model with a `blob_key` except messages in folders: the
    queues are small, and a new one is protected without being listed here."""
    keys: set[str] = set()
    for model in apps.get_models():
        if model is not Message and any(f.name == "blob_key" for f in model._meta.fields):
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
