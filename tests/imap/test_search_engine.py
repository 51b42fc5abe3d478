"""SEARCH keys of RFC 3501 §6.4.4 / RFC 9051 §6.4.4 (with MODSEQ and "$") run against the
database: a small corpus with the expected UIDs written out per search program."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.imap.parser import parse_command
from apps.imap.search import run_search
from apps.mailstore import services
from apps.mailstore.models import Folder, Message

ALL = [1, 2, 3, 4, 5]
PADDING = "Lorem ipsum dolor sit amet. " * 200  # makes message 3 the only large one

CORPUS = [
    # 1: plain text, seen and answered, keyword $Work; wraps "Shall we / meet".
    (
        "From: Bob <bob@example.org>\r\n"
        "To: Alice <alice@example.org>, Carol <carol@example.org>\r\n"
        "Cc: dave@example.net\r\n"
        "Subject: Lunch on Friday\r\n"
        "Date: Mon, 1 Jan 2024 09:00:00 +0000\r\n"
        "Message-ID: <1@example.org>\r\n"
        "\r\n"
        "Shall we\r\nmeet at the Thai place?\r\n",
        ["\\Seen", "\\Answered", "$Work"],
        datetime(2024, 1, 1, 10, tzinfo=UTC),
    ),
    # 2: encoded words, UTF-8 quoted-printable body, Bcc, a Date: late on 2 Jan in its
    # own zone (3 Jan in UTC); X-Mailer comes before To.
    (
        "From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>\r\n"
        "X-Mailer: Thunderbird\r\n"
        "To: alice@example.org\r\n"
        "Bcc: secret@example.org\r\n"
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n"
        "Date: Tue, 2 Jan 2024 23:30:00 -0800\r\n"
        "Message-ID: <2@example.de>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "Sch=C3=B6ne Gr=C3=BC=C3=9Fe\r\n",
        ["\\Flagged"],
        datetime(2024, 1, 3, 8, tzinfo=UTC),
    ),
    # 3: a large HTML reply, deleted draft, keywords $Work $Later.
    (
        "From: Carol <carol@example.org>\r\n"
        "To: Alice <alice@example.org>\r\n"
        "Subject: Re: Lunch on Friday\r\n"
        "Date: Wed, 3 Jan 2024 12:00:00 +0000\r\n"
        "Message-ID: <3@example.org>\r\n"
        "In-Reply-To: <1@example.org>\r\n"
        "References: <1@example.org>\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "\r\n"
        f"<p>Yes, <b>Thai</b> is great.</p><p>{PADDING}</p>\r\n",
        ["\\Deleted", "\\Draft", "$Work", "$Later"],
        datetime(2024, 1, 4, 0, tzinfo=UTC),
    ),
    # 4: no Date:, no Subject:, LIKE wildcards in the text.
    (
        "From: noreply@shop.example\r\n"
        "To: alice@example.org\r\n"
        "\r\n"
        "Your order 12345 has shipped. 100% sure_thing.\r\n",
        [],
        datetime(2024, 1, 5, 12, tzinfo=UTC),
    ),
    # 5: multipart with a binary attachment; GLOB wildcards in the text.
    (
        "From: Bob <bob@example.org>\r\n"
        "To: alice@example.org\r\n"
        "Subject: Report\r\n"
        "Date: Sat, 6 Jan 2024 08:00:00 +0100\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n'
        "\r\n"
        "--b1\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "See attached. What? [x] *star*\r\n"
        "--b1\r\n"
        "Content-Type: application/pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        "Y29uZmlkZW50aWFsIG51bWJlcnM=\r\n"
        "--b1--\r\n",
        [],
        datetime(2024, 1, 6, 9, tzinfo=UTC),
    ),
]


@pytest.fixture
def inbox(alice) -> int:
    for raw, flags, arrived in CORPUS:
        new = services.NewMessage.from_bytes(raw.encode())
        services.deliver(new, [alice.id], flags=flags, internal_date=arrived)
    return Folder.objects.get(user_id=alice.id, name="INBOX").pk


def search(
    folder_id: int, program: bytes, uids: list[int] = ALL, saved: list[int] | None = None
) -> list[int]:
    key = parse_command(b"t SEARCH " + program).args.key  # type: ignore[union-attr]
    return run_search(folder_id, key, uids=uids, saved=saved)


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        (b"ALL", ALL),
        # flags (RFC 9051 §2.3.2); no session's \Recent given, so RECENT and NEW find nothing
        (b"ANSWERED", [1]),
        (b"UNANSWERED", [2, 3, 4, 5]),
        (b"DELETED", [3]),
        (b"UNDELETED", [1, 2, 4, 5]),
        (b"DRAFT", [3]),
        (b"UNDRAFT", [1, 2, 4, 5]),
        (b"FLAGGED", [2]),
        (b"UNFLAGGED", [1, 3, 4, 5]),
        (b"SEEN", [1]),
        (b"UNSEEN", [2, 3, 4, 5]),
        (b"KEYWORD $Work", [1, 3]),
        (b"KEYWORD $work", [1, 3]),
        (b"KEYWORD $Later", [3]),
        (b"KEYWORD $Wor", []),
        (b"UNKEYWORD $Work", [2, 4, 5]),
        (b"RECENT", []),
        (b"NEW", []),
        (b"OLD", ALL),
        # internal date, by day in the server's zone
        (b"BEFORE 4-Jan-2024", [1, 2]),
        (b"ON 3-Jan-2024", [2]),
        (b"ON 2-Jan-2024", []),
        (b"SINCE 4-Jan-2024", [3, 4, 5]),
        # Date: header, by the day written in it; message 4 has none
        (b"SENTBEFORE 2-Jan-2024", [1]),
        (b"SENTON 2-Jan-2024", [2]),
        (b"SENTON 3-Jan-2024", [3]),
        (b"SENTSINCE 3-Jan-2024", [3, 5]),
        (b"NOT SENTON 2-Jan-2024", [1, 3, 4, 5]),
        # size
        (b"LARGER 3000", [3]),
        (b"SMALLER 3000", [1, 2, 4, 5]),
        (b"LARGER 1 SMALLER 100", []),
        # addresses and subject, case-insensitive, decoded
        (b"FROM bob", [1, 5]),
        (b"FROM BOB@EXAMPLE.ORG", [1, 5]),
        (b'FROM "J\xc3\xb6rg"', [2]),
        (b'FROM "J\xc3\x96RG M\xc3\x9cLLER"', [2]),
        (b"FROM example.de", [2]),
        (b"TO carol", [1]),
        (b"TO alice", ALL),
        (b"CC dave", [1]),
        (b'CC ""', [1]),
        (b"BCC secret", [2]),
        (b"SUBJECT lunch", [1, 3]),
        (b'SUBJECT "gr\xc3\xbc\xc3\x9fe"', [2]),
        (b'SUBJECT ""', [1, 2, 3, 5]),
        (b"HEADER X-Mailer thunder", [2]),
        (b"HEADER x-mailer THUNDERBIRD", [2]),
        (b'HEADER X-Mailer ""', [2]),
        (b"HEADER X-Mailer alice", []),  # in the To: line after it, not in X-Mailer
        (b"HEADER In-Reply-To <1@example.org>", [3]),
        (b"HEADER Subject friday", [1, 3]),
        (b"HEADER X-Missing x", []),
        # body and text, through the full-text index
        (b"BODY thai", [1, 3]),
        (b'BODY "shall we meet"', [1]),  # across the line break
        (b'BODY "sch\xc3\xb6ne gr\xc3\xbc\xc3\x9fe"', [2]),
        (b'BODY "SCH\xc3\x96NE"', [2]),
        (b"BODY lunch", []),  # only in the subject
        (b"BODY confidential", []),  # only in a binary attachment
        (b"BODY x", [5]),  # shorter than a trigram: a scan, still exact
        (b"BODY th", [1, 3, 4]),
        (b'BODY "0% s"', [4]),
        (b"BODY e_t", [4]),
        (b'BODY "%"', [4]),
        (b'BODY "? [x] *"', [5]),
        (b'BODY "a*r"', []),
        (b'BODY ""', ALL),
        (b"TEXT lunch", [1, 3]),
        (b"TEXT 12345", [4]),
        (b"TEXT secret@example", [2]),
        (b'TEXT "from: bob"', [1, 5]),
    ],
)
def test_each_search_key_finds_its_messages(inbox, program, expected):
    assert search(inbox, program) == expected


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        (b"OR FROM bob FLAGGED", [1, 2, 5]),
        (b"NOT (OR SEEN DELETED)", [2, 4, 5]),
        (b"NOT NOT SEEN", [1]),
        (b"NOT ALL", []),
        (b"OR (FROM bob NOT SUBJECT lunch) (DELETED DRAFT)", [3, 5]),
        (b"NOT OR BODY thai TEXT shipped", [2, 5]),
        (b"OR OR SEEN FLAGGED OR DELETED LARGER 100000", [1, 2, 3]),
        (b"SEEN ANSWERED KEYWORD $Work", [1]),
        (b"NOT (UNSEEN NOT (OR BODY thai SENTON 2-Jan-2024))", [1, 2, 3]),
        (b"(((NOT UID 1:2)))", [3, 4, 5]),
        (b'OR NOT HEADER X-Mailer "" BCC secret', ALL),
    ],
)
def test_not_or_and_nest_to_any_depth(inbox, program, expected):
    assert search(inbox, program) == expected


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        (b"1:3", [1, 2, 3]),
        (b"*", [5]),
        (b"2,4:*", [2, 4, 5]),
        (b"4:2", [2, 3, 4]),
        (b"7:9", []),
        (b"UID 4:*", [4, 5]),
        (b"UID 9:*", [5]),  # "*" is the largest UID in use: 9:* is 5:9
        (b"UID 1:2,5", [1, 2, 5]),
        (b"UID 6:10", []),
        (b"UID " + ",".join(str(n) for n in range(1, 402, 2)).encode(), [1, 3, 5]),
        (b",".join(str(n).encode() for n in range(1, 6, 2)), [1, 3, 5]),
    ],
)
def test_sequence_and_uid_sets_select_messages(inbox, program, expected):
    assert search(inbox, program) == expected


def test_sequence_numbers_follow_the_sessions_view_after_an_expunge(inbox, alice):
    services.delete_messages(alice.id, inbox, [2])
    # Not yet told: message 2 keeps its number and simply matches nothing.
    assert search(inbox, b"2:3", uids=ALL) == [3]
    # Told: sequence number 2 is UID 3 now.
    assert search(inbox, b"2:3", uids=[1, 3, 4, 5]) == [3, 4]
    assert search(inbox, b"*", uids=[1, 3, 4, 5]) == [5]


def test_mail_the_session_has_not_seen_yet_never_matches(inbox):
    assert search(inbox, b"ALL", uids=[1, 2, 3]) == [1, 2, 3]
    assert search(inbox, b"UID 1:*", uids=[1, 2, 3]) == [1, 2, 3]
    assert search(inbox, b"ALL", uids=[]) == []


@pytest.mark.parametrize(
    ("program", "saved", "expected"),
    [
        (b"$", [2, 4], [2, 4]),
        (b"UID $", [2, 4], [2, 4]),
        (b"$ SEEN", [1, 2], [1]),
        (b"NOT $", [2, 4], [1, 3, 5]),
        (b"$", None, []),  # RFC 5182 §2.1: nothing saved is the empty set
        (b"UID $", list(range(1, 600, 2)), [1, 3, 5]),
    ],
)
def test_dollar_is_the_saved_result(inbox, program, saved, expected):
    assert search(inbox, program, saved=saved) == expected


def test_modseq_finds_messages_changed_at_or_after_it(inbox, alice):
    third = Message.objects.get(folder_id=inbox, uid=3).modseq
    assert search(inbox, f"MODSEQ {third}".encode()) == [3, 4, 5]
    assert search(inbox, f'MODSEQ "/flags/\\\\seen" all {third}'.encode()) == [3, 4, 5]
    services.store_flags(alice.id, inbox, [(1, 1)], "add", ["\\Flagged"])
    assert search(inbox, f"MODSEQ {third + 3}".encode()) == [1]


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        (b'CHARSET UTF-8 SUBJECT "k\xc3\xb6ln"', [2]),
        (b'CHARSET ISO-8859-1 SUBJECT "K\xf6ln"', [2]),
        (b'CHARSET ISO-8859-1 BODY "GR\xdc\xdfE"', [2]),
        (b"CHARSET UTF-8 TEXT {5}\r\nM\xc3\xbcll", [2]),
    ],
)
def test_search_strings_in_a_charset_match_decoded_text(inbox, program, expected):
    assert search(inbox, program) == expected


def test_a_copied_message_is_found_in_both_folders(inbox, alice):
    services.copy_messages(alice.id, inbox, [(2, 2)], "Archive")
    archive = Folder.objects.get(user_id=alice.id, name="Archive").pk
    assert search(archive, b'BODY "sch\xc3\xb6ne"', uids=[1]) == [1]
    assert search(inbox, b'BODY "sch\xc3\xb6ne"') == [2]
