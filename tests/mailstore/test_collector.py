"""The blob collector: what no row names goes after an hour; what a folder or a queue
still needs stays, and so does a blob that a new delivery has just found already stored."""

from __future__ import annotations

import os
import time

from apps.mailstore import services
from apps.mailstore.blobs import blob_store
from apps.mailstore.maintenance import collect_unreferenced_blobs
from apps.mailstore.models import Incoming
from apps.relay import services as relay

TWO_HOURS_AGO = time.time() - 7200


def stored(text: str) -> str:
    """A blob put two hours ago, old enough to be an orphan if nothing names it."""
    key = blob_store().put(f"Subject: {text}\r\n\r\n{text}\r\n".encode())
    os.utime(blob_store().path(key), (TWO_HOURS_AGO, TWO_HOURS_AGO))
    return key


def still_stored(*keys: str) -> list[bool]:
    return [blob_store().exists(key) for key in keys]


def test_only_blobs_that_nothing_names_are_collected(alice):
    orphan, filed, incoming, outgoing = (
        stored(name) for name in ("orphan", "filed", "incoming", "outgoing")
    )
    services.deliver(services.NewMessage.from_blob(filed, 40), [alice.id])
    Incoming.objects.create(blob_key=incoming, size=40, source="mx", recipients=[])
    relay.enqueue(
        blob_key=outgoing, size=40, mail_from=alice.address, recipients=[{"address": "x@far.test"}]
    )
    assert collect_unreferenced_blobs() >= 1  # the run's blob directory holds others too
    assert still_stored(orphan, filed, incoming, outgoing) == [False, True, True, True]


def test_young_blobs_are_left_for_the_row_that_will_name_them(db):
    key = blob_store().put(b"Subject: in flight\r\n\r\nbody\r\n")
    collect_unreferenced_blobs()
    assert blob_store().exists(key)


def test_storing_the_same_bytes_again_saves_an_old_orphan_from_the_collector(db):
    key = stored("again")
    assert blob_store().put(b"Subject: again\r\n\r\nagain\r\n") == key
    collect_unreferenced_blobs()
    assert blob_store().exists(key)
