"""STORE and UID STORE (RFC 9051 §6.4.6) with UNCHANGEDSINCE and MODIFIED (RFC 7162
§3.1.3), and new keywords announced in FLAGS (RFC 9051 §7.3.5)."""

from __future__ import annotations

import pytest

from tests.imap.conftest import deliver, message, status, untagged
from tests.imap.sexp import Value, fetch_items

# The fixture's session selected INBOX first: its messages are \Recent to it (RFC 3501
# §2.3.2), so the FETCH responses after STORE show that too.
RECENT = b"\\Recent"


@pytest.fixture
def mailbox(imap, alice):
    for n in range(1, 4):
        deliver(alice, message(n))
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    return raw


def _flags(lines: list[bytes]) -> dict[int, Value]:
    return {
        int(line.split()[1]): fetch_items(line).get(b"FLAGS") for line in untagged(lines, "FETCH")
    }


def _modseq(items: dict[bytes, Value]) -> int:
    """The number in a FETCH response's MODSEQ (n) item."""
    value = items[b"MODSEQ"]
    assert isinstance(value, list) and isinstance(value[0], int), value
    return value[0]


@pytest.mark.parametrize(
    "action, flags, expected",
    [
        ("FLAGS", "(\\Seen \\Flagged)", [b"\\Seen", b"\\Flagged", RECENT]),
        ("+FLAGS", "(\\Answered)", [b"\\Seen", b"\\Answered", RECENT]),
        ("-FLAGS", "(\\Seen)", [RECENT]),
        ("+FLAGS", "\\Draft $Label1", [b"\\Seen", b"\\Draft", RECENT, b"$Label1"]),
    ],
)
def test_store_modes_answer_with_the_new_flags(mailbox, action, flags, expected):
    """RFC 9051 §6.4.6: FLAGS replaces, +FLAGS adds, -FLAGS removes; FETCH shows the result."""
    mailbox.command("STORE 1 FLAGS (\\Seen)")
    lines = mailbox.command(f"STORE 1 {action} {flags}")
    assert _flags(lines) == {1: expected}


def test_silent_sends_no_fetch(mailbox):
    lines = mailbox.command("STORE 1:3 +FLAGS.SILENT (\\Flagged)")
    assert not untagged(lines, "FETCH")
    flags = _flags(mailbox.command("FETCH 1:3 FLAGS"))
    assert flags == {n: [b"\\Flagged", RECENT] for n in (1, 2, 3)}


def test_store_reports_unchanged_messages_too(mailbox):
    mailbox.command("STORE 2 +FLAGS (\\Seen)")
    lines = mailbox.command("STORE 1:3 +FLAGS (\\Seen)")
    assert _flags(lines) == {n: [b"\\Seen", RECENT] for n in (1, 2, 3)}


def test_uid_store_includes_uid(mailbox):
    lines = mailbox.command("UID STORE 2 +FLAGS (\\Flagged)")
    assert fetch_items(untagged(lines, "FETCH")[0]) == {b"UID": 2, b"FLAGS": [b"\\Flagged", RECENT]}


def test_recent_cannot_be_stored(mailbox, imap, alice):
    """RFC 9051 §2.3.2: \\Recent is not something a client sets: the session that owns it
    still sees it, and a later session, which does not, sees no flag at all."""
    assert _flags(mailbox.command("STORE 1 +FLAGS (\\Recent)")) == {1: [RECENT]}
    later = imap.raw(alice)
    later.command("SELECT INBOX")
    assert _flags(later.command("FETCH 1 (FLAGS)")) == {1: []}


def test_flags_are_case_insensitive(mailbox):
    lines = mailbox.command("STORE 1 +FLAGS (\\SEEN)")
    assert _flags(lines) == {1: [b"\\Seen", RECENT]}
    assert _flags(mailbox.command("STORE 1 -FLAGS (\\seen)")) == {1: [RECENT]}


def test_a_new_keyword_is_announced_in_flags(mailbox):
    lines = mailbox.command("STORE 1 +FLAGS ($Important)")
    assert b"* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Important)" in lines
    assert any(b"PERMANENTFLAGS" in line and b"$Important" in line for line in lines)


def test_unchangedsince_stores_when_nothing_changed(mailbox):
    """RFC 7162 §3.1.3: the modseq given is current, so the store happens, with MODSEQ."""
    modseq = _modseq(fetch_items(untagged(mailbox.command("FETCH 1 MODSEQ"), "FETCH")[0]))
    lines = mailbox.command(f"STORE 1 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Flagged)")
    items = fetch_items(untagged(lines, "FETCH")[0])
    assert items[b"FLAGS"] == [b"\\Flagged", RECENT] and _modseq(items) > modseq
    assert status(lines) == "OK"


def test_unchangedsince_refuses_messages_changed_later(mailbox):
    """RFC 7162 §3.1.3: OK [MODIFIED set] names the messages left alone."""
    modseq = _modseq(fetch_items(untagged(mailbox.command("FETCH 3 MODSEQ"), "FETCH")[0]))
    mailbox.command("STORE 2 +FLAGS.SILENT (\\Answered)")
    lines = mailbox.command(f"STORE 1:3 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Flagged)")
    assert status(lines) == "OK [MODIFIED 2]"
    assert sorted(_flags(lines)) == [1, 3]
    lines = mailbox.command(f"UID STORE 1:3 (UNCHANGEDSINCE {modseq}) -FLAGS (\\Flagged)")
    assert status(lines) == "OK [MODIFIED 1:3]"


def test_silent_with_condstore_still_reports_modseq(mailbox):
    mailbox.command("ENABLE CONDSTORE")
    lines = mailbox.command("STORE 1 +FLAGS.SILENT (\\Seen)")
    items = fetch_items(untagged(lines, "FETCH")[0])
    assert b"FLAGS" not in items and b"MODSEQ" in items


def test_store_to_a_missing_sequence_number_is_bad(mailbox):
    assert status(mailbox.command("STORE 9 +FLAGS (\\Seen)")) == "BAD"
