"""Housekeeping for the store: blobs that no message refers to any more."""

from __future__ import annotations

import time

from apps.mailstore.blobs import blob_store
from apps.mailstore.models import Message

# A blob is written before its row commits; only blobs older than this can be orphans.
ORPHAN_AGE_SECONDS = 3600


def collect_unreferenced_blobs(min_age: float = ORPHAN_AGE_SECONDS) -> int:
    store = blob_store()
    cutoff = time.time() - min_age
    removed = 0
    for path in store.root.glob("??/*"):
        if path.stat().st_mtime > cutoff or Message.objects.filter(blob_key=path.name).exists():
            continue
        path.unlink(missing_ok=True)
        removed += 1
    for path in store.tmp.iterdir():
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
    return removed
