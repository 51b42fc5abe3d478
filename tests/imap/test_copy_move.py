"""COPY, MOVE (RFC 9051 §6.4.7-8, RFC 6851) with COPYUID (RFC 4315 §3), and the spam
trainer's event when messages go into or out of Junk."""

from __future__ import annotations

import pytest

from apps.mailstore import services
from tests.imap.conftest import deliver, message, status, untagged


@pytest.fixture
def mailbox(imap, alice):
    for n in range(1, 5):
        deliver(alice, message(n))
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    return raw


def test_copy_answers_copyuid(mailbox):
    lines = mailbox.command("COPY 2:3 Archive")
    code = status(lines)
    assert code.startswith("OK [COPYUID ")
    _, _validity, source, target = code[4:-1].split()
    assert (source, target) == ("2:3", "1:2")
    assert mailbox.command("STATUS Archive (MESSAGES)")[0].endswith(b"(MESSAGES 2)")


def test_copy_keeps_flags_and_leaves_the_source(mailbox):
    mailbox.command("STORE 1 +FLAGS.SILENT (\\Flagged $Work)")
    mailbox.command("UID COPY 1 Archive")
    lines = mailbox.command("EXAMINE Archive")
    assert b"* 1 EXISTS" in lines
    fetched = mailbox.command("FETCH 1 (FLAGS)")
    # The copy is new in Archive: \Recent there (RFC 3501 §6.4.7), seen by EXAMINE.
    assert b"FLAGS (\\Flagged \\Recent $Work)" in fetched[0]


def test_copy_to_a_missing_mailbox_says_trycreate(mailbox):
    """RFC 9051 §6.4.7: TRYCREATE when the target does not exist."""
    assert status(mailbox.command("COPY 1 Nowhere")) == "NO [TRYCREATE]"


def test_move_expunges_and_reports_copyuid_first(mailbox):
    """RFC 6851 §4.3: OK [COPYUID] untagged, then EXPUNGE responses, then tagged OK."""
    lines = mailbox.command("MOVE 2:3 Archive")
    assert lines[0].startswith(b"* OK [COPYUID ")
    assert lines[1:3] == [b"* 3 EXPUNGE", b"* 2 EXPUNGE"]
    assert status(lines) == "OK"
    assert untagged(mailbox.command("FETCH 1:* (UID)"), "FETCH") == [
        b"* 1 FETCH (UID 1)",
        b"* 2 FETCH (UID 4)",
    ]


def test_uid_move_with_qresync_reports_vanished(imap, alice):
    deliver(alice, message(1))
    raw = imap.raw(alice)
    raw.command("ENABLE QRESYNC")
    raw.command("SELECT INBOX")
    lines = raw.command("UID MOVE 1 Trash")
    assert b"* VANISHED 1" in lines


def test_move_in_a_read_only_mailbox_is_refused(imap, alice):
    deliver(alice, message(1))
    raw = imap.raw(alice)
    raw.command("EXAMINE INBOX")
    assert status(raw.command("MOVE 1 Trash")) == "NO [READ-ONLY]"


def test_copying_nothing_is_fine(mailbox):
    assert status(mailbox.command("UID COPY 90:99 Archive")) == "OK"


@pytest.fixture
def training(monkeypatch):
    heard: list[dict] = []

    def listener(sender, **kwargs):
        heard.append(kwargs)

    services.junk_training.connect(listener, weak=False)
    yield heard
    services.junk_training.disconnect(listener)


def test_moving_into_junk_tells_the_spam_trainer(mailbox, alice, training):
    mailbox.command("MOVE 1 Junk")
    assert len(training) == 1
    assert training[0]["spam"] is True and training[0]["user_id"] == alice.id
    assert len(training[0]["blob_keys"]) == 1


def test_moving_out_of_junk_is_ham_unless_to_trash(imap, alice, training):
    deliver(alice, message(1), folder="\\Junk")
    deliver(alice, message(2), folder="\\Junk")
    raw = imap.raw(alice)
    raw.command("SELECT Junk")
    raw.command("UID MOVE 1 INBOX")
    raw.command("UID MOVE 2 Trash")
    assert [event["spam"] for event in training] == [False]


def test_copy_into_junk_also_trains(mailbox, training):
    mailbox.command("COPY 1:2 Junk")
    assert training[0]["spam"] is True and len(training[0]["blob_keys"]) == 2


def test_moves_between_other_folders_say_nothing(mailbox, training):
    mailbox.command("MOVE 1 Archive")
    assert training == []
    assert not untagged(mailbox.command("NOOP"), "EXPUNGE")


def test_move_into_the_selected_mailbox_reports_the_new_copy_before_the_expunge(mailbox):
    """RFC 6851 §3.3 (MOVE is COPY, then expunge): moving into the selected mailbox
    itself adds a new message with a new UID, announced by EXISTS, and expunges the old
    one; the copy is there before the original goes, so EXISTS comes first. The copy is
    new to this session, so RECENT follows EXISTS (RFC 3501 §7.3.2)."""
    lines = mailbox.command("MOVE 1 INBOX")
    assert lines[0].startswith(b"* OK [COPYUID ") and lines[0].split()[4:6] == [b"1", b"5]"]
    assert lines[1:4] == [b"* 5 EXISTS", b"* 5 RECENT", b"* 1 EXPUNGE"]
    assert status(lines) == "OK"
    assert untagged(mailbox.command("FETCH 1:* (UID)"), "FETCH")[-1] == b"* 4 FETCH (UID 5)"


def test_copy_into_the_selected_mailbox_reports_exists(mailbox):
    """RFC 9051 §6.4.7 / §7.4.1: a COPY into the selected mailbox adds a message, and the
    server announces it with EXISTS, at the latest by the next command."""
    lines = mailbox.command("COPY 2 INBOX")
    assert status(lines).startswith("OK [COPYUID ")
    lines += mailbox.command("NOOP")
    assert untagged(lines, "EXISTS") == [b"* 5 EXISTS"]
    assert untagged(mailbox.command("FETCH 5 (UID)"), "FETCH") == [b"* 5 FETCH (UID 5)"]
