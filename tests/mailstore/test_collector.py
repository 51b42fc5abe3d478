"""The blob collector: what no row names goes after an hour; what a folder or a queue
still needs stays, and so does a blob that a new delivery has just found already stored.
The same holds for small messages' bytes kept in the database (StoredBlob rows)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from apps.mailstore import services
from apps.mailstore.blobs import blob_store
from apps.mailstore.maintenance import collect_unreferenced_blobs
from apps.mailstore.models import Incoming, Message, StoredBlob
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


def kept_in_database(text: str, alice, *, age: float = 7200) -> str:
    """A small message filed for alice and expunged again, its StoredBlob row `age`
    seconds old: an orphan once old enough."""
    raw = f"Subject: {text}\r\n\r\n{text}\r\n".encode()
    services.deliver(services.NewMessage.writing(raw), [alice.id])
    key = hashlib.sha256(raw).hexdigest()
    Message.objects.filter(blob_key=key).delete()
    StoredBlob.objects.filter(key=key).update(stored_at=timezone.now() - timedelta(seconds=age))
    return key


def test_stored_rows_that_nothing_names_are_collected_after_an_hour(alice):
    orphan, young, incoming, outgoing, filed = (
        kept_in_database(name, alice, age=60 if name == "young" else 7200)
        for name in ("orphan", "young", "incoming", "outgoing", "filed")
    )
    Incoming.objects.create(blob_key=incoming, size=40, source="mx", recipients=[])
    relay.enqueue(
        blob_key=outgoing, size=40, mail_from=alice.address, recipients=[{"address": "x@far.test"}]
    )
    services.deliver(services.NewMessage.from_blob(filed, 40), [alice.id])
    assert collect_unreferenced_blobs() >= 1
    remaining = set(StoredBlob.objects.values_list("key", flat=True))
    assert orphan not in remaining
    assert remaining == {young, incoming, outgoing, filed}
    assert blob_store().read(filed) == b"Subject: filed\r\n\r\nfiled\r\n"


def test_delivering_the_same_small_message_again_saves_its_old_row(alice):
    key = kept_in_database("again", alice)
    services.deliver(services.NewMessage.writing(b"Subject: again\r\n\r\nagain\r\n"), [alice.id])
    Message.objects.filter(blob_key=key).delete()  # expunged again at once: young, it stays
    collect_unreferenced_blobs()
    assert StoredBlob.objects.filter(key=key).exists()


def test_a_collection_running_into_a_delivery_of_the_same_bytes_leaves_them(live_personas):
    """The race the collector's DELETE must lose: a delivery has stored an orphan's bytes
    again (refreshing the row) and not committed yet when the collector runs. On SQLite
    the collector waits for the write lock; on PostgreSQL for the row lock, then re-reads
    `stored_at`. Either way the row outlives the collection, and the message its bytes."""
    alice = live_personas["alice"]
    raw = b"Subject: race\r\n\r\nrace\r\n"
    key = kept_in_database("race", alice)
    stored_again, release = threading.Event(), threading.Event()

    def deliver() -> None:
        try:
            with transaction.atomic():
                services.deliver(services.NewMessage.writing(raw), [alice.id])
                stored_again.set()
                release.wait(10)
        finally:
            connection.close()

    def collect() -> None:
        try:
            collect_unreferenced_blobs()
        finally:
            connection.close()

    delivery = threading.Thread(target=deliver)
    delivery.start()
    assert stored_again.wait(10)
    collector = threading.Thread(target=collect)
    collector.start()
    collector.join(0.5)  # it is waiting for the delivery's lock
    release.set()
    delivery.join(10)
    collector.join(30)
    assert StoredBlob.objects.filter(key=key).exists()
    [message] = Message.objects.filter(folder__user_id=alice.id, blob_key=key)
    assert blob_store().read(message.blob_key) == raw
