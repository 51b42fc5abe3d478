"""What "250" stands on (RFC 5321 §6.1: an accepted message is the server's to deliver).

A small message is durable in its Incoming row before the reply, and gets its blob only
when the pipeline files it; a big one is a fsynced blob file first. Either way the
recipient gets the same bytes (the sweep's side: test_pipeline_recovery.py), and a
server killed with SIGKILL files what it acknowledged as soon as it is started again.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from apps.mailstore import inbound
from apps.mailstore.blobs import blob_store
from apps.mailstore.models import Incoming, StoredBlob
from tests.dnsserver import ZoneServer
from tests.mailclient import raw_message, wait_for_messages
from tests.mailserver.test_make_run import ROOT, embedded_env
from tests.mailserver.test_processes import PASSWORD, manage


def send(port: int, sender: str, recipient: str, body: str) -> bytes:
    raw = raw_message(sender, recipient, body=body)
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.sendmail(sender, [recipient], raw)
    return raw


@pytest.fixture
def no_filing():
    """Rows as SMTP leaves them, before any filing: a worker that an earlier test started
    (it lives for the whole run) must not get their tasks, so they go to a queue no
    worker reads."""
    from mailhost.celery import app

    queue = app.conf.task_default_queue
    app.conf.task_default_queue = "mailhost-test-nobody-reads"
    yield
    app.conf.task_default_queue = queue


def test_a_small_message_is_kept_in_its_row_and_a_big_one_as_a_blob(
    mailserver, live_personas, no_filing
):
    bob = live_personas["bob"]
    port = mailserver.port("smtp")
    send(port, "a@remote.test", bob.address, "small\r\n")
    send(port, "a@remote.test", bob.address, ("x" * 998 + "\r\n") * 140)  # over 128 KB
    small, big = Incoming.objects.order_by("pk")
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


# --- a whole server killed under load ---------------------------------------------------

LOAD_SESSIONS = 6
KILL_AFTER = 150  # messages acknowledged before the kill
FILED_WITHIN = 5.0  # seconds after the restart


def start_server(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int]:
    """`runmailserver` (with its embedded worker) in a session of its own, so one signal
    reaches the worker too; returns it and its SMTP port once it listens."""
    with log.open("a") as output:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runmailserver"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while not (
        found := re.search(r"^listening: smtp\s+127\.0\.0\.1:(\d+)$", log.read_text(), re.M)
    ):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return process, int(found[1])


def send_until_refused(port: int, session: int, acknowledged: list[str]) -> None:
    """One MTA's session: message after message until the server is gone. A message
    counts once the server has said 250 to its DATA."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            for n in itertools.count():
                message_id = f"<{session}.{n}@sender.test>"
                raw = (
                    f"From: carol@sender.test\r\nTo: alice@example.org\r\nSubject: load {n}\r\n"
                    f"Message-ID: {message_id}\r\n\r\nHello.\r\n"
                )
                client.sendmail("carol@sender.test", ["alice@example.org"], raw)
                acknowledged.append(message_id)
    except (OSError, smtplib.SMTPException):
        return  # killed: this session's last message was never acknowledged


def filed_message_ids(data_dir: Path) -> Counter[str]:
    """How many times each Message-ID is in a folder (the server's own database)."""
    with closing(sqlite3.connect(data_dir / "mailhost.sqlite3", timeout=30)) as db:
        return Counter(row[0] for row in db.execute("SELECT message_id FROM mailstore_message"))


def waiting_rows(data_dir: Path) -> int:
    with closing(sqlite3.connect(data_dir / "mailhost.sqlite3", timeout=30)) as db:
        return db.execute("SELECT count(*) FROM mailstore_incoming").fetchone()[0]


def test_mail_acknowledged_before_a_kill_9_is_filed_once_within_5_seconds_of_the_restart(
    tmp_path,
):
    """RFC 5321 §6.1: once it has said 250, the server must deliver the message, crash or
    not; after a SIGKILL of the server and its worker under load, a restart files what
    was left at once (not at the 30-second sweep), and nothing twice."""
    zone = ZoneServer('sender.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"').start()
    host, dns_port = zone.nameservers[0]
    env = embedded_env(tmp_path) | {"MAILHOST_DNS_SERVERS": f"{host}:{dns_port}"}
    manage(env, "migrate", "--noinput")
    manage(env, "domain", "add", "example.org")
    manage(env, "user", "add", "alice@example.org", "--password", PASSWORD)
    log = tmp_path / "server.log"
    acknowledged: list[str] = []
    try:
        first, port = start_server(env, log)
        senders = [
            threading.Thread(target=send_until_refused, args=(port, n, acknowledged))
            for n in range(LOAD_SESSIONS)
        ]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 120
        while len(acknowledged) < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(first.pid, signal.SIGKILL)  # the server and its worker, mid-load
        first.wait(30)
        for sender in senders:
            sender.join(60)
        assert len(acknowledged) >= KILL_AFTER, log.read_text()
        assert waiting_rows(tmp_path) > 0  # the kill left acknowledged mail unfiled

        restarted = time.monotonic()
        second, _ = start_server(env, log)
        try:
            while missing := set(acknowledged) - set(filed_message_ids(tmp_path)):
                waited = time.monotonic() - restarted
                assert waited < FILED_WITHIN, f"{len(missing)} not filed after {waited:.1f} s"
                time.sleep(0.1)
            # Once the worker is up and has run what the broker still held (tasks for
            # rows filed since): still once each.
            while "worker: celery started" not in log.read_text() or waiting_rows(tmp_path):
                time.sleep(0.1)
            while any((tmp_path / "queue" / "in").iterdir()):
                time.sleep(0.1)
            time.sleep(1)
            filed = filed_message_ids(tmp_path)
            assert [m for m in acknowledged if filed[m] != 1] == []
            assert [m for m, n in filed.items() if n > 1] == []
        finally:
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(60)
    finally:
        zone.stop()
