"""Several writer processes on one folder, and a writer killed mid-delivery (SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from apps.mailstore.blobs import blob_store
from apps.mailstore.models import Folder, Message

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 4
PER_WRITER = 200


def start_writer(user_id: int, count: int, tag: str, kept_in: str = "file") -> subprocess.Popen:
    env = {**os.environ, "MAILHOST_BLOB_DIR": str(settings.BLOB_DIR)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.mailstore.deliver_loop",
            str(connection.settings_dict["NAME"]),
            str(user_id),
            str(count),
            tag,
            kept_in,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("kept_in", ["file", "database"])
def test_parallel_writers_get_unique_increasing_uids_and_lose_nothing(live_personas, kept_in):
    alice = live_personas["alice"]
    writers = [
        start_writer(alice.id, PER_WRITER, f"w{i}-{kept_in}", kept_in) for i in range(WRITERS)
    ]
    outputs = [w.communicate(timeout=240) for w in writers]
    assert [w.returncode for w in writers] == [0] * WRITERS, [err for _, err in outputs]

    acknowledged = [line.split() for out, _ in outputs for line in out.splitlines()]
    assert len(acknowledged) == WRITERS * PER_WRITER
    inbox = Folder.objects.get(user_id=alice.id, name="INBOX")
    uids = list(Message.objects.filter(folder=inbox).order_by("id").values_list("uid", flat=True))
    assert len(uids) == WRITERS * PER_WRITER
    assert uids == sorted(uids) and len(set(uids)) == len(uids)  # increase with insert order
    assert sorted(int(a[1]) for a in acknowledged) == sorted(uids)
    assert inbox.uidnext == max(uids) + 1
    # each writer saw its own UIDs strictly increase
    for out, _ in outputs:
        mine = [int(line.split()[1]) for line in out.splitlines()]
        assert mine == sorted(mine)


@pytest.mark.parametrize("kept_in", ["file", "database"])
def test_a_writer_killed_mid_delivery_leaves_every_acknowledged_message_whole(
    live_personas, kept_in
):
    alice = live_personas["alice"]
    writer = start_writer(alice.id, 100000, f"crash-{kept_in}", kept_in)  # bytes of its own
    acknowledged: list[list[str]] = []
    deadline = time.monotonic() + 120
    assert writer.stdout is not None
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        acknowledged.append(writer.stdout.readline().split())
    os.kill(writer.pid, signal.SIGKILL)
    out, _ = writer.communicate()
    acknowledged += [line.split() for line in out.splitlines()]

    rows = {m.uid: m for m in Message.objects.filter(folder__user_id=alice.id)}
    for _, uid, tag, n in acknowledged:
        message = rows[int(uid)]
        assert message.subject == f"{tag} number {n}"
        assert f"Subject: {tag} number {n}".encode() in blob_store().read(message.blob_key)
    # No half message: every row's bytes are there, as long as the row says.
    for message in rows.values():
        assert len(blob_store().read(message.blob_key)) == message.size
        assert blob_store().path(message.blob_key).exists() == (kept_in == "file")
    # At most the one delivery in flight committed without being acknowledged.
    assert len(acknowledged) <= len(rows) <= len(acknowledged) + 1
