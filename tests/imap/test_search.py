"""SEARCH, SORT and THREAD as the client sees them (RFC 9051 §6.4.4, RFC 3501 §6.4.4,
RFC 5256): every search key, sequence numbers versus UIDs, ESEARCH (RFC 4731), SEARCHRES
(RFC 5182), CHARSET, MODSEQ (RFC 7162 §3.1.5), and SORT/THREAD responses."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from apps.mailstore import services
from tests.imap.conftest import deliver, status, untagged

MESSAGES = [
    # (from, to, cc/bcc header, subject, extra headers, body, day, flags)
    (
        "bob",
        "alice",
        "",
        "Meeting tomorrow",
        "",
        "Let's meet at noon.",
        1,
        ["\\Seen", "\\Answered"],
    ),
    (
        "carol",
        "alice",
        "Cc: dave@example.org\r\n",
        "Re: Meeting tomorrow",
        "In-Reply-To: <s1@example.org>\r\nReferences: <s1@example.org>\r\n",
        "I can't make it. Grüße aus Köln.",
        2,
        ["\\Flagged", "$Work"],
    ),
    (
        "bob",
        "alice",
        "Bcc: eve@example.org\r\n",
        "Invoice",
        "",
        "Please pay this invoice.\r\n" + "Line of padding text.\r\n" * 200,
        3,
        ["\\Deleted"],
    ),
    ("alice", "bob", "", "Draft", "", "Unfinished.", 4, ["\\Draft"]),
]


WEEKDAYS = ["Sun", "Mon", "Tue", "Wed"]  # 1 to 4 November 2026


def _raw(n: int, sender, to, copy, subject, extra, body, day) -> bytes:
    return (
        f"From: {sender}@example.org\r\nTo: {to}@example.org\r\n{copy}Subject: {subject}\r\n"
        f"Message-ID: <s{n}@example.org>\r\n{extra}"
        f"Date: {WEEKDAYS[day - 1]}, {day:02d} Nov 2026 10:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
        f"\r\n{body}\r\n"
    ).encode()


@pytest.fixture
def mailbox(imap, alice):
    for n, (sender, to, copy, subject, extra, body, day, flags) in enumerate(MESSAGES, 1):
        services.deliver(
            services.NewMessage.from_bytes(_raw(n, sender, to, copy, subject, extra, body, day)),
            [alice.id],
            flags=flags,
            internal_date=datetime(2026, 11, day, 12, 0, tzinfo=UTC),
        )
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    return raw


def _found(lines: list[bytes]) -> list[int]:
    [line] = untagged(lines, "SEARCH")
    return [int(n) for n in line.split()[2:]]


@pytest.mark.parametrize(
    "key, expected",
    [
        ("ALL", [1, 2, 3, 4]),
        ("ANSWERED", [1]),
        ("UNANSWERED", [2, 3, 4]),
        ("DELETED", [3]),
        ("UNDELETED", [1, 2, 4]),
        ("FLAGGED", [2]),
        ("UNFLAGGED", [1, 3, 4]),
        ("SEEN", [1]),
        ("UNSEEN", [2, 3, 4]),
        ("DRAFT", [4]),
        ("UNDRAFT", [1, 2, 3]),
        ("KEYWORD $Work", [2]),
        ("UNKEYWORD $Work", [1, 3, 4]),
        # RFC 3501 §6.4.4: the session selected first, so all four are \Recent to it
        ("RECENT", [1, 2, 3, 4]),
        ("NEW", [2, 3, 4]),
        ("OLD", []),
        ("FROM bob", [1, 3]),
        ("TO bob", [4]),
        ("CC dave", [2]),
        ("BCC eve", [3]),
        ("SUBJECT meeting", [1, 2]),
        ('HEADER In-Reply-To "<s1@example.org>"', [2]),
        ('HEADER References ""', [2]),
        ("BODY noon", [1]),
        ("TEXT invoice", [3]),
        ("BODY Invoice", [3]),
        ("BEFORE 2-Nov-2026", [1]),
        ("ON 2-Nov-2026", [2]),
        ("SINCE 3-Nov-2026", [3, 4]),
        ("SENTBEFORE 2-Nov-2026", [1]),
        ("SENTON 3-Nov-2026", [3]),
        ("SENTSINCE 4-Nov-2026", [4]),
        ("LARGER 3000", [3]),
        ("SMALLER 3000", [1, 2, 4]),
        ("UID 2:3", [2, 3]),
        ("1,4", [1, 4]),
        ("2:*", [2, 3, 4]),
        ("NOT SEEN", [2, 3, 4]),
        ("OR SEEN FLAGGED", [1, 2]),
        ("(SEEN ANSWERED)", [1]),
        ("FROM bob NOT DELETED", [1]),
    ],
)
def test_every_search_key(mailbox, key, expected):
    assert _found(mailbox.command(f"SEARCH {key}")) == expected


def test_charset_utf8_text_search(mailbox):
    lines = mailbox.command(b"SEARCH CHARSET UTF-8 BODY {7+}\r\n" + "Grüße".encode())
    assert _found(lines) == [2]


def test_an_unknown_charset_is_badcharset(mailbox):
    """RFC 9051 §6.4.4: NO [BADCHARSET]."""
    assert status(mailbox.command("SEARCH CHARSET X-NOPE ALL")).startswith("NO [BADCHARSET")


def test_results_are_sequence_numbers_or_uids(mailbox):
    mailbox.command("STORE 1 +FLAGS.SILENT (\\Deleted)")
    mailbox.command("UID EXPUNGE 1")
    assert _found(mailbox.command("SEARCH FROM bob")) == [2]  # UID 3 is now number 2
    assert _found(mailbox.command("UID SEARCH FROM bob")) == [3]


def test_esearch_return_options(mailbox):
    """RFC 4731 §3.1: ESEARCH (TAG "t") [UID] MIN MAX COUNT ALL."""
    lines = mailbox.command("UID SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN")
    assert untagged(lines, "ESEARCH") == [b'* ESEARCH (TAG "t3") UID MIN 2 MAX 4 COUNT 3 ALL 2:4']
    lines = mailbox.command("SEARCH RETURN () FLAGGED")
    assert untagged(lines, "ESEARCH") == [b'* ESEARCH (TAG "t4") ALL 2']
    lines = mailbox.command("SEARCH RETURN (COUNT) KEYWORD $Nothing")
    assert untagged(lines, "ESEARCH") == [b'* ESEARCH (TAG "t5") COUNT 0']


def test_imap4rev2_gets_esearch_for_plain_search(mailbox):
    """RFC 9051 §6.4.4: IMAP4rev2 answers SEARCH with ESEARCH."""
    mailbox.command("UNSELECT")
    mailbox.command("ENABLE IMAP4rev2")
    mailbox.command("SELECT INBOX")
    lines = mailbox.command("SEARCH SEEN")
    assert untagged(lines, "ESEARCH") == [b'* ESEARCH (TAG "t6") ALL 1']


def test_searchres_saves_and_reuses_the_result(mailbox):
    """RFC 5182 §2: RETURN (SAVE) sends nothing and keeps the result for "$"."""
    lines = mailbox.command("UID SEARCH RETURN (SAVE) FROM bob")
    assert not untagged(lines, "ESEARCH") and status(lines) == "OK"
    fetched = untagged(mailbox.command("UID FETCH $ (UID)"), "FETCH")
    assert fetched == [b"* 1 FETCH (UID 1)", b"* 3 FETCH (UID 3)"]
    assert _found(mailbox.command("SEARCH $ SEEN")) == [1]
    assert status(mailbox.command("UID STORE $ +FLAGS.SILENT (\\Flagged)")) == "OK"
    assert _found(mailbox.command("SEARCH FLAGGED")) == [1, 2, 3]


def test_searchres_min_keeps_only_the_minimum(mailbox):
    mailbox.command("SEARCH RETURN (SAVE MIN) UNSEEN")
    assert _found(mailbox.command("UID SEARCH $")) == [2]


def test_modseq_search_reports_the_highest_modseq(mailbox):
    """RFC 7162 §3.1.5: SEARCH MODSEQ n answers "(MODSEQ m)" after the numbers."""
    mailbox.command("STORE 4 +FLAGS.SILENT (\\Seen)")
    [line] = untagged(mailbox.command("SEARCH MODSEQ 1"), "SEARCH")
    numbers, _, modseq = line.partition(b" (MODSEQ ")
    assert numbers == b"* SEARCH 1 2 3 4" and int(modseq[:-1]) > 4


def test_sort_orders_by_criteria(mailbox):
    """RFC 5256 §4: SORT (criteria) charset keys -> "* SORT" in that order."""
    [line] = untagged(mailbox.command("SORT (SUBJECT) UTF-8 ALL"), "SORT")
    assert line == b"* SORT 4 3 1 2"
    [line] = untagged(mailbox.command("UID SORT (REVERSE ARRIVAL) UTF-8 UNDELETED"), "SORT")
    assert line == b"* SORT 4 2 1"


def test_sort_with_return_is_esearch(mailbox):
    """RFC 5267 §3.2: ESORT keeps the sort order in ALL."""
    lines = mailbox.command("SORT RETURN (ALL COUNT) (REVERSE DATE) UTF-8 ALL")
    assert untagged(lines, "ESEARCH") == [b'* ESEARCH (TAG "t3") COUNT 4 ALL 4,3,2,1']


@pytest.mark.parametrize(
    "algorithm, expected",
    [("REFERENCES", b"* THREAD (1 2)(3)(4)"), ("ORDEREDSUBJECT", b"* THREAD (1 2)(3)(4)")],
)
def test_thread(mailbox, algorithm, expected):
    assert untagged(mailbox.command(f"THREAD {algorithm} UTF-8 ALL"), "THREAD") == [expected]


def test_thread_with_no_match_is_bare(mailbox):
    assert untagged(mailbox.command("UID THREAD REFERENCES UTF-8 KEYWORD $No"), "THREAD") == [
        b"* THREAD"
    ]


def test_an_unknown_thread_algorithm_is_bad(mailbox):
    assert status(mailbox.command("THREAD FANCY UTF-8 ALL")) == "BAD"


def test_no_expunge_during_search(mailbox, imap, alice):
    other = imap.raw(alice)
    other.command("SELECT INBOX")
    other.command("EXPUNGE")
    lines = mailbox.command("SEARCH ALL")
    assert not untagged(lines, "EXPUNGE")
    assert _found(lines) == [1, 2, 4]
    assert untagged(mailbox.command("NOOP"), "EXPUNGE") == [b"* 3 EXPUNGE"]


# imaptest's search-addresses mailbox: address fields written every way RFC 5322 allows.
ADDRESS_MESSAGES = [
    "From: user-from@domain.org\r\nTo: user-to@domain.org\r\nCc: user-cc@domain.org\r\n"
    "Bcc: user-bcc@domain.org\r\n",
    "From: RealFrom <user-from@domain.org>\r\nTo: RealTo <user-to@domain.org>\r\n"
    "Cc: RealCc <user-cc@domain.org>\r\nBcc: RealBcc <user-bcc@domain.org>\r\n",
    "From: <user-from (comment)@ (comment) domain.org>\r\nTo: <user-to@domain.org>\r\n"
    "Cc: <user-cc@domain.org>\r\nBcc: <user-bcc@domain.org>\r\n",
    "From: user-from@domain.org (RealFrom)\r\nTo: user-to@domain.org (RealTo)\r\n"
    "Cc: user-cc@domain.org (RealCc)\r\nBcc: user-bcc@domain.org (RealBcc)\r\n",
    "From: user-from1@domain.org, user-from2@domain.org\r\nCc: user-cc@domain.org\r\n",
    "To: groupname: groupuser1@domain.org, groupuser2@domain.org;,\r\n"
    "  groupname2: groupuser3@domain.org;\r\n",
    "From: =?utf-8?q?J=C3=B6rg?= <user-folded@\r\n domain.org>\r\n"
    "To: =?iso-8859-1?q?J=FCrgen?= (the boss) <juergen@domain.org>\r\n",
]


@pytest.fixture
def addresses(imap, alice):
    for n, fields in enumerate(ADDRESS_MESSAGES, 1):
        deliver(alice, f"{fields}Subject: {n}\r\n\r\nbody{n}\r\n".encode())
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    return raw


@pytest.mark.parametrize(
    "key, needle, expected",
    [
        ("FROM", "user-from@domain.org", [1, 2, 3, 4]),
        ("TO", "user-to@domain.org", [1, 2, 3, 4]),
        ("CC", "user-cc@domain.org", [1, 2, 3, 4, 5]),
        ("BCC", "user-bcc@domain.org", [1, 2, 3, 4]),
        ("FROM", "ser-from@do", [1, 2, 3, 4]),
        ("FROM", "realfrom", [2, 4]),
        ("FROM", "comment", [3]),
        ("FROM", "user-from2", [5]),
        ("TO", "groupname2", [6]),
        ("TO", "groupuser3@domain.org", [6]),
        ("TO", "groupuser4", []),
        ("FROM", "user-folded@domain.org", [7]),
        ("FROM", "Jörg <user-folded@domain.org>", [7]),
        ("TO", "jürgen <juergen@domain.org>", [7]),
    ],
)
def test_address_keys_match_the_parsed_addresses(addresses, key, needle, expected):
    """RFC 9051 §6.4.4 (RFC 3501 §6.4.4): FROM/TO/CC/BCC "contains the specified string"
    in the field; an address split by comments or folding, or a display name in RFC 2047
    words, is found as the address and name it stands for, as well as by its raw text."""
    data = needle.encode()
    lines = addresses.command(
        b"SEARCH CHARSET UTF-8 %s {%d+}\r\n%s" % (key.encode(), len(data), data)
    )
    assert _found(lines) == expected


def test_esearch_modseq_is_that_of_the_messages_it_returns(mailbox):
    """RFC 7162 §3.1.10 (with §3.1.5): ESEARCH's MODSEQ is the highest mod-sequence of the
    messages being returned: the MIN or MAX message alone, both with MIN MAX, every match
    with ALL or COUNT (imaptest's esearch-condstore)."""
    mailbox.command("FETCH 1 (MODSEQ)")  # CONDSTORE on: STORE reports each new modseq
    modseq = {}
    for seq in (1, 3, 2, 4):
        [line] = untagged(mailbox.command(f"STORE {seq} +FLAGS (\\Seen $Done)"), "FETCH")
        [number] = re.findall(rb"MODSEQ \((\d+)\)", line)
        modseq[seq] = int(number)

    def answer(command: str) -> bytes:
        [line] = untagged(mailbox.command(command), "ESEARCH")
        return line.split(b") ", 1)[1]

    assert answer("SEARCH RETURN (MIN) 1:3 MODSEQ 1") == b"MIN 1 MODSEQ %d" % modseq[1]
    assert answer("SEARCH RETURN (MAX) 1:3 MODSEQ 1") == b"MAX 3 MODSEQ %d" % modseq[3]
    assert answer("SEARCH RETURN () 1:3 MODSEQ 1") == b"ALL 1:3 MODSEQ %d" % modseq[2]
    assert answer("SEARCH RETURN (MIN MAX) 2:3 MODSEQ 1") == b"MIN 2 MAX 3 MODSEQ %d" % modseq[2]
    assert answer("SEARCH RETURN (COUNT) 1,3 MODSEQ 1") == b"COUNT 2 MODSEQ %d" % modseq[3]
    assert answer(f"SEARCH RETURN (ALL) 2:3 MODSEQ {modseq[2]}") == b"ALL 2 MODSEQ %d" % modseq[2]


def test_sort_with_a_modseq_key_reports_the_highest_modseq(mailbox):
    """RFC 7162 §3.1.9: SORT with a MODSEQ criterion ends its response with (MODSEQ n), the
    highest mod-sequence of the messages it returns; ESORT (RFC 5267) gives it as MODSEQ
    (§3.1.10). Like SEARCH MODSEQ, it turns CONDSTORE on (§3.1)."""
    lines = mailbox.command("SORT (SUBJECT) UTF-8 MODSEQ 1")
    assert lines[0].startswith(b"* OK [HIGHESTMODSEQ ")
    [first] = re.findall(rb"^\* SORT 4 3 1 2 \(MODSEQ (\d+)\)$", untagged(lines, "SORT")[0])
    [store] = untagged(mailbox.command("STORE 3 +FLAGS (\\Seen)"), "FETCH")
    [number] = re.findall(rb"MODSEQ \((\d+)\)", store)
    assert int(first) < int(number)
    [line] = untagged(mailbox.command("SORT (SUBJECT) UTF-8 MODSEQ 1"), "SORT")
    assert line == b"* SORT 4 3 1 2 (MODSEQ %s)" % number
    lines = mailbox.command("SORT RETURN (COUNT) (SUBJECT) UTF-8 MODSEQ 1")
    assert untagged(lines, "ESEARCH") == [b'* ESEARCH (TAG "t6") COUNT 4 MODSEQ %s' % number]
