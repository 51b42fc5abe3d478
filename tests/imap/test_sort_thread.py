"""SORT (RFC 5256 §3, RFC 5957 DISPLAYFROM/DISPLAYTO) and THREAD (RFC 5256 §3 REFERENCES
and ORDEREDSUBJECT), with the THREAD response lists of RFC 5256 §4."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.imap.command_types import SortCriterion
from apps.imap.parser import parse_command
from apps.imap.sort import run_sort
from apps.imap.threading import (
    ThreadMessage,
    ordered_subject,
    references,
    render_threads,
    run_thread,
)
from apps.mailstore import services
from apps.mailstore.mime import base_subject
from apps.mailstore.models import Folder
from tests.imap.conftest import deliver, untagged

# uid: (From, To, Cc, Subject, Date or None, internal date day, body octets)
SORT_CORPUS = {
    1: ('"Zed" <zed@a.org>', "bob@b.org", "mike@c.org", "Re: apple",
        "Wed, 3 Jan 2024 10:00:00 +0000", 5, 100),
    2: ("=?utf-8?q?=C3=89mile?= <emile@x.org>", '"Zoe" <adam@b.org>', "", "banana",
        "Mon, 1 Jan 2024 10:00:00 +0000", 4, 3000),
    3: ("<bob@z.org>", "", "", "[list] Apple",
        "Tue, 2 Jan 2024 23:00:00 -0500", 6, 1500),
    4: ("Carl <carl@d.org>", '"Yan" <yan@e.org>', "anna@f.org", "cherry", None, 2, 700),
    5: ("Carl <carl@e.org>", "bob@b.org", "", "Cherry",
        "Wed, 3 Jan 2024 10:00:00 +0000", 3, 900),
}  # fmt: skip
ALL = [1, 2, 3, 4, 5]


def raw_message(sender: str, to: str, cc: str, subject: str, date: str | None, size: int) -> bytes:
    lines = [f"From: {sender}", f"Subject: {subject}"]
    lines += [f"To: {to}"] if to else []
    lines += [f"Cc: {cc}"] if cc else []
    lines += [f"Date: {date}"] if date else []
    return ("\r\n".join(lines) + "\r\n\r\n" + "x" * size + "\r\n").encode()


@pytest.fixture
def inbox(alice) -> int:
    for sender, to, cc, subject, date, day, size in SORT_CORPUS.values():
        new = services.NewMessage.from_bytes(raw_message(sender, to, cc, subject, date, size))
        arrived = datetime(2024, 1, day, 12, tzinfo=UTC)
        services.deliver(new, [alice.id], internal_date=arrived)
    return Folder.objects.get(user_id=alice.id, name="INBOX").pk


def sort(folder_id: int, criteria: str, program: bytes = b"ALL") -> list[int]:
    parsed = [
        SortCriterion(word.removeprefix("-"), word.startswith("-")) for word in criteria.split()
    ]
    key = parse_command(b"t SEARCH " + program).args.key  # type: ignore[union-attr]
    return run_sort(folder_id, parsed, key, uids=ALL)


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("ARRIVAL", [4, 5, 2, 1, 3]),
        ("-ARRIVAL", [3, 1, 2, 5, 4]),
        # sent date as an instant; no Date: means the internal date; 1 and 5 tie
        ("DATE", [2, 4, 3, 1, 5]),
        ("-DATE", [1, 5, 3, 4, 2]),  # the tie still goes by sequence number
        ("SIZE", [1, 4, 5, 3, 2]),
        ("-SIZE", [2, 3, 5, 4, 1]),
        # addr-mailbox of the first address; carl@d and carl@e tie
        ("FROM", [3, 4, 5, 2, 1]),
        ("-FROM", [1, 2, 4, 5, 3]),
        ("TO", [3, 2, 1, 5, 4]),  # no To: sorts as ""
        ("-TO", [4, 1, 5, 2, 3]),
        ("CC", [2, 3, 5, 4, 1]),
        ("-CC", [1, 4, 2, 3, 5]),
        # base subject, case-insensitively: "Re:" and "[list]" do not count
        ("SUBJECT", [1, 3, 2, 4, 5]),
        ("-SUBJECT", [4, 5, 2, 1, 3]),
        # display name, or the address without one; "Émile" sorts with the E's
        ("DISPLAYFROM", [3, 4, 5, 2, 1]),
        ("-DISPLAYFROM", [1, 2, 4, 5, 3]),
        ("DISPLAYTO", [3, 1, 5, 4, 2]),
        ("-DISPLAYTO", [2, 4, 1, 5, 3]),
        # several criteria: later ones break ties of earlier ones
        ("SUBJECT -DATE", [1, 3, 2, 5, 4]),
        ("-SUBJECT ARRIVAL", [4, 5, 2, 1, 3]),
        ("FROM -SIZE", [3, 5, 4, 2, 1]),
        ("DATE SIZE", [2, 4, 3, 1, 5]),
        ("-DATE -SIZE", [5, 1, 3, 4, 2]),
    ],
)
def test_sort_orders_by_each_criterion(inbox, criteria, expected):
    assert sort(inbox, criteria) == expected


def test_sort_orders_only_the_messages_the_search_matches(inbox):
    assert sort(inbox, "DATE", b"NOT FROM carl") == [2, 3, 1]
    assert sort(inbox, "SUBJECT", b"NOT FROM carl") == [1, 3, 2]
    assert sort(inbox, "DATE", b"UID 6:*") == [5]


def test_sort_refuses_an_unknown_key(inbox):
    with pytest.raises(ValueError, match="Unknown sort key"):
        sort(inbox, "COLOUR")


# --- threads ---------------------------------------------------------------------------


def msg(
    uid: int,
    message_id: str = "",
    *,
    refs: str = "",
    reply_to: str = "",
    subject: str = "",
    minute: int | None = None,
) -> ThreadMessage:
    """A message sent `minute` minutes into the day (default: its UID)."""
    sent = uid if minute is None else minute
    return ThreadMessage(
        uid=uid,
        position=sent * 100_000 + uid,  # by sent date, then sequence number
        message_id=f"<{message_id}>" if message_id else "",
        in_reply_to=f"<{reply_to}>" if reply_to else "",
        references=" ".join(f"<{r}>" for r in refs.split()),
        subject=subject,
        base_subject=base_subject(subject),
    )


def threaded(messages: list[ThreadMessage]) -> bytes:
    return render_threads(references(sorted(messages, key=lambda m: m.uid)))


def test_references_builds_the_rfc_5256_example():
    messages = [
        msg(2, "two", subject="Alone"),
        msg(3, "a", subject="Topic"),
        msg(6, "b", refs="a", subject="Re: Topic"),
        msg(4, "c", refs="a b", subject="Re: Topic"),
        msg(23, "d", refs="a b c", subject="Re: Topic"),
        msg(44, "e", refs="a b", subject="Re: Topic", minute=40),
        msg(7, "f", refs="a b e", subject="Re: Topic", minute=41),
        msg(96, "g", reply_to="f", subject="Re: Topic", minute=42),
    ]
    assert threaded(messages) == b"(2)(3 6 (4 23)(44 7 96))"


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        # a dummy parent with two children stays at the top: "((3)(5))"
        ([msg(3, "x", reply_to="gone", subject="A"), msg(5, "y", reply_to="gone", subject="B")],
         b"((3)(5))"),
        # a dummy with one child gives way to it
        ([msg(7, "x", reply_to="gone", subject="Re: A")], b"(7)"),
        # a missing message in the middle of a chain
        ([msg(1, "a", subject="A"), msg(2, "c", refs="a b", subject="Re: A")], b"(1 2)"),
        # In-Reply-To counts only without References
        ([msg(1, "a", subject="A"), msg(2, "b", subject="B"),
          msg(3, "c", refs="a", reply_to="b", subject="C")], b"(1 3)(2)"),
        # same base subject: a reply goes under the original, with or without references
        ([msg(1, "a", subject="Hello"), msg(2, "b", subject="Re: hello")], b"(1 2)"),
        ([msg(1, "a", subject="Re: Hi"), msg(2, "b", subject="Hi")], b"(2 1)"),
        ([msg(1, "a", subject="Hello"), msg(2, "b", subject="[list] Fwd: HELLO")], b"(1 2)"),
        # two originals, or two replies, get a dummy parent
        ([msg(1, "a", subject="Hello"), msg(2, "b", subject="hello")], b"((1)(2))"),
        ([msg(1, "a", subject="Re: x"), msg(2, "b", subject="Re: x"),
          msg(3, "c", subject="Re: x")], b"((1)(2)(3))"),
        # empty subjects never merge
        ([msg(1, "a"), msg(2, "b")], b"(1)(2)"),
        # a loop in the references is not followed
        ([msg(1, "a", refs="b", subject="A"), msg(2, "b", refs="a", subject="B")], b"(2 1)"),
        ([msg(1, "a", refs="a", subject="Self")], b"(1)"),
        # a duplicate Message-ID belongs to the first message with it
        ([msg(1, "d", subject="A"), msg(2, "d", subject="B"), msg(3, "e", refs="d", subject="C")],
         b"(1 3)(2)"),
        # no Message-ID at all
        ([msg(1, subject="A"), msg(2, reply_to="x", subject="B")], b"(1)(2)"),
        # a truncated References does not move a parent already known
        ([msg(1, "b", subject="B"), msg(2, "c", refs="a b", subject="Re: B")], b"(1 2)"),
        # top level by sent date; a dummy sorts by its first child
        ([msg(1, "p", minute=50, subject="Late"),
          msg(2, "q", reply_to="gone", minute=30, subject="One"),
          msg(3, "r", reply_to="gone", minute=10, subject="Two"),
          msg(4, "s", minute=20, subject="Middle")], b"((3)(2))(4)(1)"),
        # siblings by sent date, ties by sequence number
        ([msg(1, "a", subject="A"), msg(2, "b", reply_to="a", minute=9, subject="Re: A"),
          msg(3, "c", reply_to="a", minute=5, subject="Re: A"),
          msg(4, "d", reply_to="a", minute=5, subject="Re: A")], b"(1 (3)(4)(2))"),
    ],
)  # fmt: skip
def test_references_threads_as_rfc_5256_describes(messages, expected):
    assert threaded(messages) == expected


def test_a_very_long_reply_chain_needs_no_recursion():
    chain = [msg(1, "m1", subject="Deep")]
    chain += [msg(n, f"m{n}", reply_to=f"m{n - 1}", subject="Re: Deep") for n in range(2, 5001)]
    expected = "(" + " ".join(str(n) for n in range(1, 5001)) + ")"
    assert threaded(chain) == expected.encode()


def test_ordered_subject_groups_by_base_subject_under_the_first_message():
    messages = [
        msg(1, subject="Hello", minute=1),
        msg(2, subject="Re: hello", minute=3),
        msg(3, subject="Other", minute=2),
        msg(4, subject="RE: Hello", minute=4),
        msg(5, subject="other stuff", minute=5),
        msg(6, subject="Fwd: other stuff", minute=6),
        msg(7, subject="Re: Earlier", minute=0),
    ]
    assert render_threads(ordered_subject(messages)) == b"(7)(1 (2)(4))(3)(5 6)"


@pytest.mark.parametrize(
    ("threads", "expected"),
    [
        ([], b""),
        ([[1]], b"(1)"),
        ([[1, 2, 3]], b"(1 2 3)"),
        ([[2], [3, 6, [4, 23], [44, 7, 96]]], b"(2)(3 6 (4 23)(44 7 96))"),
        ([[[3], [5]]], b"((3)(5))"),
        ([[1, [2, [3], [4]], [5]]], b"(1 (2 (3)(4))(5))"),
    ],
)
def test_render_threads_writes_rfc_5256_thread_lists(threads, expected):
    assert render_threads(threads) == expected


def test_render_threads_can_write_sequence_numbers():
    seq = {10: 1, 20: 2, 30: 3}
    assert render_threads([[10, [20], [30]]], seq.get) == b"(1 (2)(3))"
    with pytest.raises(ValueError, match="no sequence number"):
        render_threads([[40]], seq.get)


def reply(n: int, subject: str, *, parent: int | None = None) -> bytes:
    headers = f"From: a@example.org\r\nSubject: {subject}\r\nMessage-ID: <t{n}@example.org>\r\n"
    headers += f"Date: Mon, 1 Jan 2024 10:{n:02d}:00 +0000\r\n"
    if parent:
        headers += f"In-Reply-To: <t{parent}@example.org>\r\n"
    return (headers + "\r\nbody\r\n").encode()


@pytest.mark.parametrize(
    ("algorithm", "program", "expected"),
    [
        ("REFERENCES", b"ALL", b"(1 (2 4)(3))(5)"),
        ("REFERENCES", b"NOT UID 2", b"(1 (3)(4))(5)"),
        ("ORDEREDSUBJECT", b"ALL", b"(1 (2)(3)(4))(5)"),
        ("orderedsubject", b"UID 4:*", b"(4)(5)"),
    ],
)
def test_run_thread_threads_what_the_search_matches(alice, algorithm, program, expected):
    for n, subject, parent in [
        (1, "Plan", None),
        (2, "Re: Plan", 1),
        (3, "Re: Plan", 1),
        (4, "Re: Plan", 2),
        (5, "Other", None),
    ]:
        services.deliver(
            services.NewMessage.from_bytes(reply(n, subject, parent=parent)), [alice.id]
        )
    folder_id = Folder.objects.get(user_id=alice.id, name="INBOX").pk
    key = parse_command(b"t SEARCH " + program).args.key  # type: ignore[union-attr]
    threads = run_thread(folder_id, algorithm, key, uids=[1, 2, 3, 4, 5])
    assert render_threads(threads) == expected


def test_run_thread_refuses_an_unknown_algorithm(alice):
    key = parse_command(b"t SEARCH ALL").args.key  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="Unknown threading algorithm"):
        run_thread(1, "JWZ", key, uids=[1])


# --- over the wire: imaptest's sort-addresses, sort-display-from and sort-display-to ------

ADDRESS_SORT = [
    "From: user2@domain2.org\r\nTo: foo bar <user2@domain2.org>\r\n"
    "Cc: user2@domain2.org (foo bar)\r\n",
    "From: user2@domain1.org\r\nTo: user2@domain1.org\r\nCc: user2: blah@domain1.org;\r\n",
    "From: user1@domain1.org\r\nTo: user1@domain1.org\r\nCc: user1@domain1.org\r\n",
]
DISPLAY_SORT = [
    "foo bar <a@b.c>",
    "b@c.d",
    "d",
    "=?iso-8859-1?q?foo_aar?= <e@f.g>",
    "=?iso-8859-1?q?foo_car?= <f@g.h>",
    "a: xx@xx.org, yy@yy.org;",
    "z: aa@aa.org, bb@bb.org;",
    "empty:;",
]


def sorted_over_imap(imap, persona, headers: list[str], criteria: list[str]) -> list[bytes]:
    for n, fields in enumerate(headers, 1):
        deliver(persona, f"{fields}Subject: {n}\r\n\r\n{n}\r\n".encode())
    raw = imap.raw(persona)
    raw.command("SELECT INBOX")
    return [untagged(raw.command(f"SORT ({c}) US-ASCII ALL"), "SORT")[0] for c in criteria]


def test_sort_by_address_takes_the_first_address_even_a_group(imap, alice):
    """RFC 5256 §3: FROM, TO and CC sort on the addr-mailbox of the first address; when
    the field starts with a group, the first address is the group's start marker, whose
    addr-mailbox is the group name (RFC 9051 §7.5.2). Ties go by sequence number."""
    criteria = ["FROM", "TO", "CC", "REVERSE FROM", "REVERSE TO", "REVERSE CC"]
    lines = sorted_over_imap(imap, alice, ADDRESS_SORT, criteria)
    assert lines == [b"* SORT 3 1 2"] * 3 + [b"* SORT 1 2 3"] * 3


def test_sort_by_display_name_falls_back_to_the_address(imap, alice):
    """RFC 5957 §3: DISPLAYFROM / DISPLAYTO sort on the first address's decoded addr-name,
    or without one on its addr-spec (a group: its name)."""
    headers = [f"From: {v}\r\nTo: {v}\r\n" for v in DISPLAY_SORT]
    lines = sorted_over_imap(
        imap, alice, headers, ["DISPLAYTO", "REVERSE DISPLAYTO", "DISPLAYFROM"]
    )
    assert lines == [
        b"* SORT 6 2 3 8 4 1 5 7",
        b"* SORT 7 5 1 4 8 3 2 6",
        b"* SORT 6 2 3 8 4 1 5 7",
    ]
