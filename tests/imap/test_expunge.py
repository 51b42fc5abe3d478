"""EXPUNGE, UID EXPUNGE (RFC 4315 §2.1), CLOSE, UNSELECT (RFC 3691) and CHECK
(RFC 9051 §6.4.1-3, RFC 3501 §6.4.1)."""

from __future__ import annotations

import pytest

from tests.imap.conftest import deliver, message, status, untagged


@pytest.fixture
def mailbox(imap, alice):
    for n in range(1, 6):
        deliver(alice, message(n))
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    raw.command("STORE 2,4,5 +FLAGS.SILENT (\\Deleted)")
    return raw


def test_expunge_reports_each_message_with_valid_numbers(mailbox):
    """RFC 9051 §7.5.1: each EXPUNGE renumbers the rest; sent highest first, each is valid
    as it arrives."""
    lines = mailbox.command("EXPUNGE")
    assert untagged(lines, "EXPUNGE") == [b"* 5 EXPUNGE", b"* 4 EXPUNGE", b"* 2 EXPUNGE"]
    uids = untagged(mailbox.command("FETCH 1:* (UID)"), "FETCH")
    assert uids == [b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 3)"]


def test_uid_expunge_removes_only_the_given_uids(mailbox):
    """RFC 4315 §2.1."""
    lines = mailbox.command("UID EXPUNGE 4:5")
    assert untagged(lines, "EXPUNGE") == [b"* 5 EXPUNGE", b"* 4 EXPUNGE"]
    assert b"* 3 EXISTS" not in lines
    assert status(mailbox.command("FETCH 3 FLAGS")) == "OK"


def test_expunge_with_qresync_is_vanished(imap, alice):
    """RFC 7162 §3.2.10: VANISHED instead of EXPUNGE once QRESYNC is on."""
    for n in range(1, 4):
        deliver(alice, message(n))
    raw = imap.raw(alice)
    raw.command("ENABLE QRESYNC")
    raw.command("SELECT INBOX")
    raw.command("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    assert b"* VANISHED 1:2" in raw.command("EXPUNGE")


def test_close_expunges_silently_and_unselects(mailbox):
    """RFC 9051 §6.4.1: no EXPUNGE responses; back to the authenticated state."""
    lines = mailbox.command("CLOSE")
    assert not untagged(lines, "EXPUNGE")
    assert status(mailbox.command("FETCH 1 FLAGS")) == "BAD"
    assert b"* 2 EXISTS" in mailbox.command("SELECT INBOX")


def test_unselect_keeps_deleted_messages(mailbox):
    """RFC 3691 §2."""
    mailbox.command("UNSELECT")
    assert b"* 5 EXISTS" in mailbox.command("SELECT INBOX")


def test_close_in_examine_expunges_nothing(imap, alice):
    deliver(alice, message(1))
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    raw.command("STORE 1 +FLAGS (\\Deleted)")
    raw.command("EXAMINE INBOX")
    raw.command("CLOSE")
    assert b"* 1 EXISTS" in raw.command("SELECT INBOX")


def test_check_is_a_noop_that_syncs(mailbox):
    assert status(mailbox.command("CHECK")) == "OK"
