"""Two sessions on one folder (RFC 9051 §5.2, §7; RFC 3501 §7): expunges, flag changes
and deliveries reach the other session on NOOP and during IDLE (RFC 2177), never as an
EXPUNGE while it answers FETCH or STORE (RFC 9051 §7.5.1), and CONDSTORE / QRESYNC bring a
reconnecting client up to date (RFC 7162 §3.1.4, §3.2.5)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.db import connection

from tests.conftest import ROOT
from tests.imap.conftest import deliver, message, status, untagged
from tests.imap.sexp import fetch_items


@pytest.fixture
def two(imap, alice):
    for n in range(1, 5):
        deliver(alice, message(n))
    first, second = imap.raw(alice), imap.raw(alice)
    first.command("SELECT INBOX")
    second.command("SELECT INBOX")
    return first, second


def test_an_expunge_reaches_the_other_session_on_noop(two):
    first, second = two
    first.command("STORE 2 +FLAGS.SILENT (\\Deleted)")
    first.command("EXPUNGE")
    assert untagged(second.command("NOOP"), "EXPUNGE") == [b"* 2 EXPUNGE"]
    assert untagged(second.command("FETCH 2 (UID)"), "FETCH") == [b"* 2 FETCH (UID 3)"]


def test_a_flag_change_reaches_the_other_session(two):
    first, second = two
    first.command("STORE 3 +FLAGS.SILENT (\\Flagged)")
    lines = second.command("NOOP")
    assert untagged(lines, "FETCH") == [b"* 3 FETCH (UID 3 FLAGS (\\Flagged))"]


def test_a_new_delivery_reaches_the_other_session(two, alice):
    deliver(alice, message(5))
    assert b"* 5 EXISTS" in two[1].command("NOOP")


def test_changes_also_ride_on_other_commands(two):
    first, second = two
    first.command("STORE 1 +FLAGS.SILENT (\\Answered)")
    lines = second.command('LIST "" INBOX')
    assert b"* 1 FETCH (UID 1 FLAGS (\\Answered))" in lines


@pytest.mark.parametrize("command", ["FETCH 1:* (FLAGS)", "STORE 1 +FLAGS (\\Seen)"])
def test_no_expunge_while_answering_fetch_or_store(two, command):
    """RFC 9051 §7.5.1: the expunge waits for a command that allows it."""
    first, second = two
    first.command("STORE 4 +FLAGS.SILENT (\\Deleted)")
    first.command("EXPUNGE")
    lines = second.command(command)
    assert not untagged(lines, "EXPUNGE")
    assert status(lines) == "OK"
    assert untagged(second.command("NOOP"), "EXPUNGE") == [b"* 4 EXPUNGE"]


def test_a_deferred_expunge_keeps_sequence_numbers_stable(two, alice):
    first, second = two
    first.command("STORE 2 +FLAGS.SILENT (\\Deleted)")
    first.command("EXPUNGE")
    deliver(alice, message(5))
    lines = second.command("FETCH 1:* (UID)")
    # Message 2 is gone but keeps its number; the new one is announced as number 5.
    assert [fetch_items(line)[b"UID"] for line in untagged(lines, "FETCH")] == [1, 3, 4]
    assert untagged(lines, "EXISTS") == [b"* 5 EXISTS"]
    assert fetch_items(untagged(second.command("FETCH 5 (UID)"), "FETCH")[0])[b"UID"] == 5
    lines = second.command("NOOP")
    assert untagged(lines, "EXPUNGE") == [b"* 2 EXPUNGE"]


def test_uid_fetch_may_carry_the_expunge(two):
    """RFC 9051 §7.5.1 allows EXPUNGE during UID commands."""
    first, second = two
    first.command("STORE 1 +FLAGS.SILENT (\\Deleted)")
    first.command("EXPUNGE")
    assert untagged(second.command("UID FETCH 1:* (FLAGS)"), "EXPUNGE") == [b"* 1 EXPUNGE"]


def _idle(raw) -> None:
    raw.send(b"idle IDLE\r\n")
    assert raw.line() == b"+ idling"


def _wait_for(raw, word: bytes, seconds: float) -> tuple[bytes, float]:
    start = time.monotonic()
    raw.sock.settimeout(seconds)
    try:
        while True:
            line = raw.line()
            if word in line:
                return line, time.monotonic() - start
    finally:
        raw.sock.settimeout(15)


def _done(raw) -> list[bytes]:
    raw.send(b"DONE\r\n")
    return raw.until_tagged("idle")


def test_idle_sees_a_delivery_within_a_second(two, alice):
    _, second = two
    _idle(second)
    deliver(alice, message(5))
    line, elapsed = _wait_for(second, b"EXISTS", 1.0)
    assert line == b"* 5 EXISTS" and elapsed < 1.0
    assert status(_done(second)) == "OK"


def test_idle_sees_expunges_and_flag_changes(two):
    first, second = two
    _idle(second)
    first.command("STORE 1 +FLAGS.SILENT (\\Seen)")
    assert _wait_for(second, b"FETCH", 1.0)[0] == b"* 1 FETCH (UID 1 FLAGS (\\Seen))"
    first.command("STORE 2 +FLAGS.SILENT (\\Deleted)")
    first.command("EXPUNGE")
    lines = [_wait_for(second, b"EXPUNGE", 1.0)[0]]
    assert lines == [b"* 2 EXPUNGE"]
    assert status(_done(second)) == "OK"


def test_idle_sees_a_delivery_made_by_another_process(two, alice):
    """Embedded mode: the store's database poll turns another process's commit into an
    event here (apps.mailstore.events), still within a second."""
    _, second = two
    _idle(second)
    script = (
        "import django; django.setup()\n"
        "from apps.mailstore import services\n"
        f"services.deliver(services.NewMessage.from_bytes({message(9)!r}), [{alice.id}])\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailhost.settings",
        "MAILHOST_DB_NAME": str(connection.settings_dict["NAME"]),
    }
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=60)
    line, elapsed = _wait_for(second, b"EXISTS", 1.0)
    assert line == b"* 5 EXISTS" and elapsed < 1.0
    _done(second)


def test_idle_ends_with_bad_on_anything_but_done(two):
    _, second = two
    _idle(second)
    second.send(b"NOOP\r\n")
    assert status(second.until_tagged("idle")) == "BAD"


def test_condstore_resync_after_reconnect(imap, alice):
    """RFC 7162 §3.1.4: remember HIGHESTMODSEQ, then UID FETCH ... (CHANGEDSINCE it)."""
    for n in range(1, 4):
        deliver(alice, message(n))
    raw = imap.raw(alice)
    lines = raw.command("SELECT INBOX (CONDSTORE)")
    highest = int(next(line for line in lines if b"HIGHESTMODSEQ" in line).split()[3][:-1])
    raw.command("LOGOUT")
    other = imap.raw(alice)
    other.command("SELECT INBOX")
    other.command("STORE 2 +FLAGS.SILENT (\\Flagged)")
    deliver(alice, message(4))
    again = imap.raw(alice)
    again.command("SELECT INBOX (CONDSTORE)")
    changed = untagged(again.command(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})"), "FETCH")
    items = [fetch_items(line) for line in changed]
    # Message 4 came after `other` selected and before it looked again: \Recent to the
    # next session to select (RFC 3501 §2.3.2), this one.
    assert [(i[b"UID"], i[b"FLAGS"]) for i in items] == [
        (2, [b"\\Flagged"]),
        (4, [b"\\Recent"]),
    ]


def test_qresync_select_reports_vanished_and_changed(imap, alice):
    """RFC 7162 §3.2.5.2: SELECT ... (QRESYNC (uidvalidity modseq)) answers VANISHED
    (EARLIER) for expunged UIDs and FETCH (UID FLAGS MODSEQ) for changed ones."""
    for n in range(1, 5):
        deliver(alice, message(n))
    raw = imap.raw(alice)
    raw.command("ENABLE QRESYNC")
    lines = raw.command("SELECT INBOX")
    text = b"\n".join(lines)
    validity = int(text.split(b"[UIDVALIDITY ")[1].split(b"]")[0])
    highest = int(text.split(b"[HIGHESTMODSEQ ")[1].split(b"]")[0])
    raw.command("LOGOUT")

    other = imap.raw(alice)
    other.command("SELECT INBOX")
    other.command("STORE 1 +FLAGS.SILENT (\\Seen)")
    other.command("STORE 3 +FLAGS.SILENT (\\Deleted)")
    other.command("EXPUNGE")

    again = imap.raw(alice)
    again.command("ENABLE QRESYNC")
    lines = again.command(f"SELECT INBOX (QRESYNC ({validity} {highest} 1:4))")
    assert b"* VANISHED (EARLIER) 3" in lines
    fetched = [fetch_items(line) for line in untagged(lines, "FETCH")]
    assert [(f[b"UID"], f[b"FLAGS"]) for f in fetched] == [(1, [b"\\Seen"])]
    assert all(b"MODSEQ" in f for f in fetched)
    assert b"* 3 EXISTS" in lines


def test_qresync_with_a_stale_uidvalidity_is_a_plain_select(imap, alice):
    deliver(alice, message(1))
    raw = imap.raw(alice)
    raw.command("ENABLE QRESYNC")
    lines = raw.command("SELECT INBOX (QRESYNC (1 1))")
    assert not untagged(lines, "VANISHED") and not untagged(lines, "FETCH")
    assert status(lines) == "OK [READ-WRITE]"


def test_qresync_parameters_need_enable_first(imap, alice):
    raw = imap.raw(alice)
    assert status(raw.command("SELECT INBOX (QRESYNC (1 1))")) == "BAD"
