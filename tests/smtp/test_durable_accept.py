"""What "250" stands on (RFC 5321 §6.1: an accepted message is the server's to deliver).

A small message is durable in its Incoming row before the reply, and gets its blob only
when the pipeline files it; a big one is a fsynced blob file first. Either way the
recipient gets the same bytes (the sweep's side: test_pipeline_recovery.py).
"""

from __future__ import annotations

import smtplib

from apps.mailstore import inbound
from apps.mailstore.blobs import blob_store
from apps.mailstore.models import Incoming, StoredBlob
from tests.mailclient import raw_message, wait_for_messages


def send(port: int, sender: str, recipient: str, body: str) -> bytes:
    raw = raw_message(sender, recipient, body=body)
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.sendmail(sender, [recipient], raw)
    return raw


def test_a_small_message_is_kept_in_its_row_and_a_big_one_as_a_blob(mailserver, live_personas):
    bob = live_personas["bob"]
    port = mailserver.port("smtp")
    # Each row is read the moment its 250 came: a worker that an earlier test started (the
    # fixture is per session) files and deletes them a few tens of milliseconds later.
    send(port, "a@remote.test", bob.address, "small\r\n")
    small = Incoming.objects.latest("pk")
    send(port, "a@remote.test", bob.address, ("x" * 998 + "\r\n") * 140)  # over 128 KB
    big = Incoming.objects.latest("pk")
    assert small.data is not None and bytes(small.data).endswith(b"\r\n\r\nsmall\r\n")
    assert not blob_store().path(small.blob_key).exists()  # not until it is filed
    assert inbound.inline(small.size) and not inbound.inline(big.size)
    assert big.data is None and blob_store().read(big.blob_key).endswith(b"x" * 998 + b"\r\n")


def test_both_kinds_reach_the_mailbox_byte_exact(mailsystem, live_personas):
    bob = live_personas["bob"]
    port = mailsystem.port("smtp")
    bodies = ["small\r\n", ("y" * 998 + "\r\n") * 140]
    sent = [send(port, "a@remote.test", bob.address, body) for body in bodies]
    small, big = wait_for_messages(bob.id, 2)
    stored = [blob_store().read(m.blob_key) for m in (small, big)]
    for raw, kept in zip(sent, stored, strict=True):
        assert kept.endswith(raw)  # after the trace and Authentication-Results headers
    assert not Incoming.objects.exists()
    # Filed, the small one's bytes are a database row, the big one's a blob file.
    assert StoredBlob.objects.filter(key=small.blob_key).exists()
    assert not blob_store().path(small.blob_key).exists()
    assert blob_store().path(big.blob_key).exists()
