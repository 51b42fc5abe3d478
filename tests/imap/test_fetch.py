"""FETCH and UID FETCH (RFC 9051 §6.4.5, §6.4.9, §7.5.2): data items, macros, \\Seen,
partial fetches, BINARY (RFC 3516), MODSEQ and CHANGEDSINCE (RFC 7162 §3.1.4)."""

from __future__ import annotations

import re

import pytest

from tests.imap.conftest import deliver, message, status, untagged
from tests.imap.sexp import fetch_items


@pytest.fixture
def mailbox(imap, alice):
    """A session that selected INBOX first: its three messages are \\Recent to it (RFC
    3501 §2.3.2), so their FLAGS show it."""
    for n in range(1, 4):
        deliver(alice, message(n))
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    return raw


def _items(lines: list[bytes]) -> list[dict]:
    return [fetch_items(line) for line in untagged(lines, "FETCH")]


@pytest.mark.parametrize(
    "macro, expected",
    [
        ("FAST", {b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE"}),
        ("ALL", {b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE"}),
        ("FULL", {b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE", b"BODY"}),
    ],
)
def test_macros_expand_to_their_items(mailbox, macro, expected):
    """RFC 9051 §6.4.5: ALL, FAST and FULL."""
    items = _items(mailbox.command(f"FETCH 1 {macro}"))[0]
    assert set(items) == expected


def test_uid_fetch_always_includes_uid(mailbox):
    """RFC 9051 §6.4.9: UID is part of every UID FETCH response."""
    items = _items(mailbox.command("UID FETCH 2 (FLAGS)"))
    assert items == [{b"UID": 2, b"FLAGS": [b"\\Recent"]}]


def test_fetch_by_sequence_range_and_star(mailbox):
    lines = mailbox.command("FETCH 2:* (UID)")
    assert [i[b"UID"] for i in _items(lines)] == [2, 3]


def test_sequence_numbers_past_the_end_are_bad(mailbox):
    assert status(mailbox.command("FETCH 4 (FLAGS)")) == "BAD"


def test_uids_that_do_not_exist_are_skipped(mailbox):
    lines = mailbox.command("UID FETCH 2,7:9 (FLAGS)")
    assert [i[b"UID"] for i in _items(lines)] == [2]
    assert status(lines) == "OK"


def test_body_sets_seen_and_reports_the_new_flags(mailbox):
    """RFC 9051 §6.4.5: BODY[] sets \\Seen; changed flags go in the response."""
    items = _items(mailbox.command("FETCH 1 (BODY[TEXT])"))[0]
    assert items[b"FLAGS"] == [b"\\Seen", b"\\Recent"]
    assert items[b"BODY[TEXT]"] == b"Hello 1.\r\nThis is message 1.\r\n"


@pytest.mark.parametrize(
    "item", ["BODY.PEEK[]", "BINARY.PEEK[1]", "RFC822.HEADER", "BODY.PEEK[TEXT]"]
)
def test_peek_items_leave_seen_alone(mailbox, item):
    mailbox.command(f"FETCH 1 ({item})")
    assert _items(mailbox.command("FETCH 1 (FLAGS)"))[0][b"FLAGS"] == [b"\\Recent"]


@pytest.mark.parametrize("item", ["RFC822", "RFC822.TEXT", "BINARY[1]", "BODY[HEADER]"])
def test_non_peek_items_set_seen(mailbox, item):
    mailbox.command(f"FETCH 2 ({item})")
    assert _items(mailbox.command("FETCH 2 (FLAGS)"))[0][b"FLAGS"] == [b"\\Seen", b"\\Recent"]


def test_examine_never_sets_seen(imap, alice):
    """RFC 3501 §6.3.2: no change to the mailbox; the unclaimed message still shows
    \\Recent, which EXAMINE sees but does not take."""
    deliver(alice, message(1))
    raw = imap.raw(alice)
    raw.command("EXAMINE INBOX")
    raw.command("FETCH 1 (BODY[])")
    assert _items(raw.command("FETCH 1 (FLAGS)"))[0][b"FLAGS"] == [b"\\Recent"]


def test_rfc822_items_keep_their_names(mailbox):
    """RFC 3501 §6.4.5: RFC822 = BODY[], RFC822.HEADER = BODY.PEEK[HEADER], RFC822.TEXT."""
    items = _items(mailbox.command("FETCH 3 (RFC822.HEADER RFC822.TEXT RFC822)"))[0]
    assert items[b"RFC822"] == message(3)
    assert items[b"RFC822.HEADER"] + items[b"RFC822.TEXT"] == message(3)


def test_internaldate_is_the_append_date(imap, alice):
    client = imap.login(alice)
    client.append("INBOX", None, '"05-Mar-2025 14:03:09 +0100"', message(1))
    client.select("INBOX")
    _typ, data = client.fetch("1", "(INTERNALDATE)")
    assert re.search(rb'INTERNALDATE "( 5|05)-Mar-2025 1[34]:03:09 [+-]\d{4}"', data[0])


def test_partial_past_the_end_is_empty(mailbox):
    items = _items(mailbox.command("FETCH 1 (BODY.PEEK[]<100000.10>)"))[0]
    assert items[b"BODY[]<100000>"] == b""


def test_modseq_item_enables_condstore(mailbox):
    """RFC 7162 §3.1.4.1: MODSEQ in FETCH; afterwards STORE reports MODSEQ too."""
    items = _items(mailbox.command("FETCH 1 (MODSEQ)"))[0]
    assert isinstance(items[b"MODSEQ"][0], int)
    lines = mailbox.command("STORE 1 +FLAGS (\\Flagged)")
    assert b"MODSEQ (" in untagged(lines, "FETCH")[0]


def test_changedsince_returns_only_later_changes(mailbox):
    """RFC 7162 §3.1.4.1: FETCH ... (CHANGEDSINCE n) with MODSEQ added."""
    before = _items(mailbox.command("FETCH 3 (MODSEQ)"))[0][b"MODSEQ"][0]
    mailbox.command("STORE 2 +FLAGS.SILENT (\\Answered)")
    lines = mailbox.command(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {before})")
    assert [(i[b"UID"], i[b"FLAGS"]) for i in _items(lines)] == [(2, [b"\\Answered", b"\\Recent"])]
    assert all(b"MODSEQ" in i for i in _items(lines))


def test_changedsince_keeps_to_the_set_it_is_given(mailbox):
    """RFC 7162 §3.1.4.1: CHANGEDSINCE narrows the set, it never widens it: sequence
    numbers, UIDs and the saved result (RFC 5182) all still bound the answer, and a
    sequence number past the end is still an error (RFC 9051 §6.4.5)."""
    before = _items(mailbox.command("FETCH 3 (MODSEQ)"))[0][b"MODSEQ"][0]
    mailbox.command("STORE 1,3 +FLAGS.SILENT (\\Flagged)")

    def changed(command: str) -> list[int]:
        return [i[b"UID"] for i in _items(mailbox.command(command))]

    assert changed(f"FETCH 2:3 (UID FLAGS) (CHANGEDSINCE {before})") == [3]
    assert changed(f"FETCH 1:* (UID FLAGS) (CHANGEDSINCE {before})") == [1, 3]
    assert changed(f"UID FETCH 2 (FLAGS) (CHANGEDSINCE {before})") == []
    assert changed(f"UID FETCH 1,3:5 (FLAGS) (CHANGEDSINCE {before})") == [1, 3]
    mailbox.command("SEARCH RETURN (SAVE) 2:3")
    assert changed(f"UID FETCH $ (FLAGS) (CHANGEDSINCE {before})") == [3]
    assert status(mailbox.command(f"FETCH 2:9 (FLAGS) (CHANGEDSINCE {before})")) == "BAD"


def test_vanished_earlier_with_changedsince(imap, alice):
    """RFC 7162 §3.2.6: UID FETCH ... (CHANGEDSINCE n VANISHED) after ENABLE QRESYNC."""
    for n in range(1, 4):
        deliver(alice, message(n))
    raw = imap.raw(alice)
    raw.command("ENABLE QRESYNC")
    raw.command("SELECT INBOX")
    modseq = _items(raw.command("FETCH 3 (MODSEQ)"))[0][b"MODSEQ"][0]
    raw.command("STORE 2 +FLAGS.SILENT (\\Deleted)")
    raw.command("EXPUNGE")
    lines = raw.command(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert b"* VANISHED (EARLIER) 2" in lines


def test_binary_uses_literal8_for_nul_octets(imap, alice):
    """RFC 3516 §4.3: decoded content with NUL goes as ~{n}."""
    raw_message = (
        b"From: a@example.org\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n"
    )
    deliver(alice, raw_message)
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    lines = raw.command("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])")
    assert b"BINARY[1] ~{3}\r\n\x00\x01\x02" in lines[0]
    assert b"BINARY.SIZE[1] 3" in lines[0]


def test_binary_of_an_unknown_encoding_is_unknown_cte(imap, alice):
    deliver(alice, b"From: a@example.org\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n")
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    assert raw.command("FETCH 1 (BINARY.PEEK[1])")[-1].startswith(b"t3 NO [UNKNOWN-CTE]")


def test_a_large_message_streams_whole(imap, alice):
    big = message(1, body="x" * 78 + "\r\n") + b"y" * (3 * 1024 * 1024) + b"\r\n"
    deliver(alice, big)
    client = imap.login(alice)
    client.select("INBOX")
    _typ, data = client.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
    assert data[0][1] == big
    _typ, data = client.fetch("1", "(BODY.PEEK[TEXT]<0.80>)")
    assert data[0][1] == b"x" * 78 + b"\r\n"


def test_garbage_fetch_attributes_are_bad(mailbox):
    assert status(mailbox.command("FETCH 1 (NOSUCHTHING)")) == "BAD"


def _mime(*parts: tuple[str, bytes]) -> bytes:
    """A multipart/mixed message of text parts, each (Content-Transfer-Encoding, body)."""
    out = b"From: user@domain.org\r\nMime-Version: 1.0\r\n"
    out += b'Content-Type: multipart/mixed; boundary="foo"\r\n\r\n'
    for encoding, body in parts:
        out += b"--foo\r\nContent-Type: text/x-myown; charset=us-ascii\r\n"
        out += b"Content-Transfer-Encoding: %s\r\n\r\n%s\r\n" % (encoding.encode(), body)
    return out + b"--foo--\r\n"


# imaptest's fetch-binary-mime-qp part: soft line breaks, =XX, and white space that
# transport added at line ends (some of it after a soft line break's "=").
QP_BODY = (
    b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\nfoo = \t\r\nbar\r\n"
    b"foo =\r\n=62\r\nfoo  \r\nbar=\r\n\r\nfoo_bar\r\n"
)
QP_DECODED = (
    b"hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo b\r\nfoo\r\nbar\r\nfoo_bar\r\n"
)
BASE64_BODY = b"  aGVs    \r\n bG8g  \r\n   d29y  \t \r\n    bGQ= \r\n\r\n"
BINARY_BASE64_BODY = b"YWJjZGVmZw1oaWprbA0KbW5vCnBxcnN0dXZxeHl6\r\n"


@pytest.mark.parametrize(
    "item, expected",
    [
        ("BINARY.SIZE[1]", 65),
        ("BINARY.PEEK[1]", QP_DECODED),
        ("BINARY.PEEK[1]<0.10>", QP_DECODED[:10]),
        ("BINARY.PEEK[1]<15.10>", QP_DECODED[15:25]),
        ("BINARY.PEEK[1]<40.100>", QP_DECODED[40:]),
        ("BINARY.SIZE[2]", 11),
        ("BINARY.PEEK[2]", b"hello world"),
        ("BINARY.SIZE[3]", 30),
        ("BINARY.PEEK[3]<5.10>", b"fg\rhijkl\r\n"),
    ],
)
def test_binary_decodes_quoted_printable_and_base64(imap, alice, item, expected):
    """RFC 3516 §4.2/§4.3: BINARY[part] is the part with its Content-Transfer-Encoding
    undone (RFC 2045 §6.7: trailing white space deleted, soft line breaks and =XX
    undone; §6.8 base64, white space ignored), BINARY.SIZE its decoded length, and
    <partial> counts octets of the decoded data."""
    qp = ("quoted-printable", QP_BODY)
    deliver(alice, _mime(qp, ("base64", BASE64_BODY), ("base64", BINARY_BASE64_BODY)))
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    [items] = _items(raw.command(f"FETCH 1 ({item})"))
    name = item.replace(".PEEK", "").encode()
    name = re.sub(rb"<(\d+)\.\d+>", rb"<\1>", name)
    assert items[name] == expected


def test_binary_sets_seen_and_binary_peek_does_not(imap, alice):
    """RFC 3516 §4.2: BINARY[] sets \\Seen, BINARY.PEEK[] and BINARY.SIZE[] leave it;
    BINARY[] is the whole message, and a section-binary has no .MIME or .TEXT (BAD)."""
    message_bytes = _mime(("quoted-printable", b"a=3D= \r\nb"))
    deliver(alice, message_bytes)
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    [items] = _items(raw.command("FETCH 1 (BINARY.PEEK[] BINARY.SIZE[1] FLAGS)"))
    # \Recent: this session is the first to see it (RFC 3501 §2.3.2)
    assert items[b"BINARY[]"] == message_bytes and items[b"FLAGS"] == [b"\\Recent"]
    [items] = _items(raw.command("FETCH 1 (BINARY[1])"))
    assert items[b"BINARY[1]"] == b"a=b" and items[b"FLAGS"] == [b"\\Seen", b"\\Recent"]
    assert status(raw.command("FETCH 1 (BINARY.PEEK[1.MIME])")) == "BAD"


def _highestmodseq(lines: list[bytes]) -> list[int]:
    return [int(n) for n in re.findall(rb"^\* OK \[HIGHESTMODSEQ (\d+)\]", b"\n".join(lines), re.M)]


@pytest.mark.parametrize(
    "command",
    [
        "FETCH 1 (MODSEQ)",
        "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)",
        "STORE 1 (UNCHANGEDSINCE 1000000) +FLAGS (\\Flagged)",
        "SEARCH MODSEQ 1",
        "UID SEARCH RETURN (COUNT) MODSEQ 1",
        "STATUS Archive (HIGHESTMODSEQ)",
    ],
)
def test_a_condstore_enabling_command_first_announces_highestmodseq(mailbox, command):
    """RFC 7162 §3.1: the first CONDSTORE-enabling command (FETCH MODSEQ or CHANGEDSINCE,
    STORE UNCHANGEDSINCE, SEARCH MODSEQ, STATUS HIGHESTMODSEQ) in a mailbox selected
    without CONDSTORE gets an untagged OK [HIGHESTMODSEQ] before its own responses, once."""
    mailbox.command("UNSELECT")
    [selected] = _highestmodseq(mailbox.command("SELECT INBOX"))
    lines = mailbox.command(command)
    assert _highestmodseq(lines) == [selected]
    assert lines[0].startswith(b"* OK [HIGHESTMODSEQ ")
    assert _highestmodseq(mailbox.command(command)) == []


def test_after_condstore_is_enabled_fetch_setting_seen_reports_modseq(mailbox):
    """RFC 7162 §3.1: once enabled, every untagged FETCH carries UID and MODSEQ, also the
    FLAGS a FETCH sends because it "implicitly set the \\Seen flag"."""
    before = _items(mailbox.command("FETCH 1 (MODSEQ)"))[0][b"MODSEQ"][0]
    [items] = _items(mailbox.command("FETCH 2 (BODY[TEXT])"))
    assert items[b"FLAGS"] == [b"\\Seen", b"\\Recent"] and items[b"UID"] == 2
    assert items[b"MODSEQ"][0] > before


def test_the_announced_highestmodseq_leaves_out_expunges_not_yet_announced(mailbox, imap, alice):
    """RFC 7162 §3.1 and RFC 9051 §7.5.1: during FETCH and SEARCH an expunge by another
    session waits; the HIGHESTMODSEQ announced meanwhile must not cover it, or a client
    keeping that value would never learn of the expunge."""
    other = imap.raw(alice)
    other.command("SELECT INBOX")
    other.command("STORE 3 +FLAGS.SILENT (\\Deleted)")
    [before] = _highestmodseq(other.command("EXPUNGE") + other.command("SELECT INBOX"))
    lines = mailbox.command("FETCH 1 (FLAGS)")  # reads the expunge, may not announce it
    lines += mailbox.command("SEARCH MODSEQ 1")
    assert not untagged(lines, "EXPUNGE")
    [announced] = _highestmodseq(lines)
    assert announced < before
    assert untagged(mailbox.command("NOOP"), "EXPUNGE") == [b"* 3 EXPUNGE"]
