"""Unit tests for the pure IMAP command parser: real client commands, every command, garbage."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.imap.parser import (
    MAX_DEPTH,
    MAX_ITEMS,
    Append,
    AppendMessage,
    Authenticate,
    BadCharsetError,
    Capability,
    Check,
    Close,
    Command,
    Compress,
    Copy,
    Create,
    Delete,
    Enable,
    Expunge,
    Fetch,
    FetchAttr,
    FetchBinary,
    FetchBinarySize,
    FetchBody,
    FetchItem,
    GetQuota,
    GetQuotaRoot,
    Id,
    Idle,
    List,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    Noop,
    ParseError,
    Partial,
    QResync,
    Rename,
    Search,
    SearchAll,
    SearchAnd,
    SearchBody,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSeq,
    SearchSize,
    SearchText,
    SearchUid,
    Section,
    Select,
    SequenceSet,
    SetQuota,
    Sort,
    SortCriterion,
    StartTls,
    Status,
    Store,
    Subscribe,
    Thread,
    Unselect,
    Unsubscribe,
    decode_mutf7,
    encode_mutf7,
    parse_command,
)


def seq(text: str) -> SequenceSet:
    return SequenceSet.parse(text)


def args(wire: bytes, *, utf8: bool = False) -> object:
    return parse_command(wire, utf8=utf8).args


FLAGS = FetchAttr("FLAGS")
UID = FetchAttr("UID")
SIZE = FetchAttr("RFC822.SIZE")
UNSEEN = SearchFlag("\\Seen", False)
PST = timezone(timedelta(hours=-7))

THUNDERBIRD_HEADERS = [
    "From",
    "To",
    "Cc",
    "Bcc",
    "Subject",
    "Date",
    "Message-ID",
    "Priority",
    "X-Priority",
    "References",
    "Newsgroups",
    "In-Reply-To",
    "Content-Type",
    "Reply-To",
]
IOS_HEADERS = [
    "date",
    "subject",
    "from",
    "to",
    "cc",
    "message-id",
    "in-reply-to",
    "references",
    "content-type",
    "x-priority",
    "x-uniform-type-identifier",
    "x-universally-unique-identifier",
    "list-id",
    "list-unsubscribe",
]
MUTT_HEADERS = [
    "DATE",
    "FROM",
    "SENDER",
    "SUBJECT",
    "TO",
    "CC",
    "MESSAGE-ID",
    "REFERENCES",
    "CONTENT-TYPE",
    "CONTENT-DESCRIPTION",
    "IN-REPLY-TO",
    "REPLY-TO",
    "LINES",
    "LIST-POST",
    "X-LABEL",
    "X-ORIGINAL-TO",
]


def header_fields(names: list[str]) -> bytes:
    return b"(" + " ".join(names).encode() + b")"


# -- commands exactly as real clients send them ------------------------------------------

CLIENT_COMMANDS = [
    pytest.param(b"1 capability", Command("1", "CAPABILITY", Capability()), id="thunderbird"),
    pytest.param(
        b'3 ID ("name" "Thunderbird" "version" "115.3.1")',
        Command("3", "ID", Id((("name", "Thunderbird"), ("version", "115.3.1")))),
        id="thunderbird-id",
    ),
    pytest.param(
        b'4 select "INBOX" (CONDSTORE)',
        Command("4", "SELECT", Select("INBOX", condstore=True)),
        id="thunderbird-select",
    ),
    pytest.param(
        b"5 UID fetch 1:* (FLAGS) (CHANGEDSINCE 1234)",
        Command("5", "UID FETCH", Fetch(True, seq("1:*"), (FLAGS,), changed_since=1234)),
        id="thunderbird-flag-sync",
    ),
    pytest.param(
        b"6 UID fetch 20 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS "
        + header_fields(THUNDERBIRD_HEADERS)
        + b"])",
        Command(
            "6",
            "UID FETCH",
            Fetch(
                True,
                seq("20"),
                (
                    UID,
                    SIZE,
                    FLAGS,
                    FetchBody(Section((), "HEADER.FIELDS", tuple(THUNDERBIRD_HEADERS)), peek=True),
                ),
            ),
        ),
        id="thunderbird-headers",
    ),
    pytest.param(
        b"7 UID fetch 20 (UID RFC822.SIZE BODY[]<0.65536>)",
        Command(
            "7",
            "UID FETCH",
            Fetch(True, seq("20"), (UID, SIZE, FetchBody(Section(), Partial(0, 65536)))),
        ),
        id="thunderbird-chunked-body",
    ),
    pytest.param(
        b"8 UID store 20 +FLAGS (\\Seen)",
        Command("8", "UID STORE", Store(True, seq("20"), "add", ("\\Seen",))),
        id="thunderbird-store",
    ),
    pytest.param(
        b'9 list (special-use) "" "*"',
        Command("9", "LIST", List("", ("*",), frozenset({"SPECIAL-USE"}), extended=True)),
        id="thunderbird-special-use",
    ),
    pytest.param(b'10 lsub "" "*"', Command("10", "LSUB", Lsub("", "*")), id="thunderbird-lsub"),
    pytest.param(
        b'11 getquotaroot "INBOX"',
        Command("11", "GETQUOTAROOT", GetQuotaRoot("INBOX")),
        id="thunderbird-quota",
    ),
    pytest.param(
        b'12 uid move 20 "Trash"',
        Command("12", "UID MOVE", Move(True, seq("20"), "Trash")),
        id="thunderbird-move",
    ),
    pytest.param(
        b'13 select "&AMk-l&AOk-ments envoy&AOk-s"',
        Command("13", "SELECT", Select("Éléments envoyés")),
        id="thunderbird-mutf7",
    ),
    pytest.param(
        b'14 append "Sent" (\\Seen) {17}\r\nSubject: hi\r\n\r\nyo',
        Command(
            "14",
            "APPEND",
            Append("Sent", (AppendMessage(b"Subject: hi\r\n\r\nyo", ("\\Seen",)),)),
        ),
        id="thunderbird-append",
    ),
    pytest.param(
        b'1 ID ("name" "iPhone Mail" "version" "19H12" "os" "iOS" "os-version" "15.7 (19H12)")',
        Command(
            "1",
            "ID",
            Id(
                (
                    ("name", "iPhone Mail"),
                    ("version", "19H12"),
                    ("os", "iOS"),
                    ("os-version", "15.7 (19H12)"),
                )
            ),
        ),
        id="ios-id",
    ),
    pytest.param(
        b"6 UID SEARCH UID 1:* NOT DELETED",
        Command(
            "6",
            "UID SEARCH",
            Search(
                True,
                SearchAnd((SearchUid(seq("1:*")), SearchNot(SearchFlag("\\Deleted")))),
            ),
        ),
        id="ios-search",
    ),
    pytest.param(
        b"8 UID FETCH 4,7:9 (INTERNALDATE UID RFC822.SIZE FLAGS MODSEQ BODY.PEEK[HEADER.FIELDS "
        + header_fields(IOS_HEADERS)
        + b"])",
        Command(
            "8",
            "UID FETCH",
            Fetch(
                True,
                seq("4,7:9"),
                (
                    FetchAttr("INTERNALDATE"),
                    UID,
                    SIZE,
                    FLAGS,
                    FetchAttr("MODSEQ"),
                    FetchBody(Section((), "HEADER.FIELDS", tuple(IOS_HEADERS)), peek=True),
                ),
            ),
        ),
        id="ios-headers",
    ),
    pytest.param(
        b"9 UID FETCH 9 (BODY.PEEK[1]<0.2048>)",
        Command(
            "9",
            "UID FETCH",
            Fetch(True, seq("9"), (FetchBody(Section((1,)), Partial(0, 2048), peek=True),)),
        ),
        id="ios-preview",
    ),
    pytest.param(
        b"10 UID STORE 9 +FLAGS.SILENT (\\Seen)",
        Command("10", "UID STORE", Store(True, seq("9"), "add", ("\\Seen",), silent=True)),
        id="ios-silent-store",
    ),
    pytest.param(b"11 IDLE", Command("11", "IDLE", Idle()), id="ios-idle"),
    pytest.param(
        b"a0001 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==",
        Command("a0001", "AUTHENTICATE", Authenticate("PLAIN", b"\x00alice\x00secret")),
        id="mutt-sasl-ir",
    ),
    pytest.param(
        b'a0003 LIST "" ""',
        Command("a0003", "LIST", List("", ("",))),
        id="mutt-delimiter",
    ),
    pytest.param(
        b'a0004 STATUS "INBOX" (MESSAGES)',
        Command("a0004", "STATUS", Status("INBOX", ("MESSAGES",))),
        id="mutt-status",
    ),
    pytest.param(
        b'a0005 SELECT "INBOX" (QRESYNC (1591190211 4567 1:120))',
        Command(
            "a0005",
            "SELECT",
            Select("INBOX", qresync=QResync(1591190211, 4567, seq("1:120"))),
        ),
        id="mutt-qresync",
    ),
    pytest.param(
        b"a0007 UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS "
        + header_fields(MUTT_HEADERS)
        + b"])",
        Command(
            "a0007",
            "UID FETCH",
            Fetch(
                True,
                seq("1:*"),
                (
                    UID,
                    FLAGS,
                    FetchAttr("INTERNALDATE"),
                    SIZE,
                    FetchBody(Section((), "HEADER.FIELDS", tuple(MUTT_HEADERS)), peek=True),
                ),
            ),
        ),
        id="mutt-headers",
    ),
    pytest.param(
        b"a0008 UID STORE 3,5:7 +FLAGS.SILENT (\\Deleted)",
        Command(
            "a0008", "UID STORE", Store(True, seq("3,5:7"), "add", ("\\Deleted",), silent=True)
        ),
        id="mutt-delete",
    ),
    pytest.param(
        b'a0010 UID SEARCH OR (FROM "report") (SUBJECT "report")',
        Command(
            "a0010",
            "UID SEARCH",
            Search(
                True,
                SearchOr(SearchHeader("From", "report"), SearchHeader("Subject", "report")),
            ),
        ),
        id="mutt-search",
    ),
    pytest.param(
        b'a0011 APPEND "Sent" (\\Seen) "17-Jul-2023 10:04:05 +0200" {2}\r\nhi',
        Command(
            "a0011",
            "APPEND",
            Append(
                "Sent",
                (
                    AppendMessage(
                        b"hi",
                        ("\\Seen",),
                        datetime(2023, 7, 17, 10, 4, 5, tzinfo=timezone(timedelta(hours=2))),
                    ),
                ),
            ),
        ),
        id="mutt-append",
    ),
    pytest.param(
        b"5 UID FETCH 1:1000000000 (UID FLAGS)",
        Command("5", "UID FETCH", Fetch(True, seq("1:1000000000"), (UID, FLAGS))),
        id="mbsync-flags",
    ),
    pytest.param(
        b"6 UID FETCH *:* (UID)",
        Command("6", "UID FETCH", Fetch(True, seq("*"), (UID,))),
        id="mbsync-max-uid",
    ),
    pytest.param(
        b"7 UID FETCH 12 (BODY.PEEK[])",
        Command("7", "UID FETCH", Fetch(True, seq("12"), (FetchBody(Section(), peek=True),))),
        id="mbsync-body",
    ),
    pytest.param(
        b'8 APPEND "INBOX" (\\Seen) {5+}\r\nhello',
        Command("8", "APPEND", Append("INBOX", (AppendMessage(b"hello", ("\\Seen",)),))),
        id="mbsync-literal-plus",
    ),
    pytest.param(
        b'9 UID SEARCH HEADER X-TUID "4fb8a1e2c3d4"',
        Command("9", "UID SEARCH", Search(True, SearchHeader("X-TUID", "4fb8a1e2c3d4"))),
        id="mbsync-tuid",
    ),
    pytest.param(
        b"10 UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (X-TUID)])",
        Command(
            "10",
            "UID FETCH",
            Fetch(
                True,
                seq("1:*"),
                (UID, FetchBody(Section((), "HEADER.FIELDS", ("X-TUID",)), peek=True)),
            ),
        ),
        id="mbsync-tuid-fetch",
    ),
    pytest.param(
        b'JFKL2 LOGIN alice "correct horse battery staple"',
        Command("JFKL2", "LOGIN", Login("alice", "correct horse battery staple")),
        id="imaplib-login",
    ),
    pytest.param(
        b"JFKL3 SELECT INBOX", Command("JFKL3", "SELECT", Select("INBOX")), id="imaplib-select"
    ),
    pytest.param(
        b"JFKL4 SEARCH ALL", Command("JFKL4", "SEARCH", Search(False, SearchAll())), id="imaplib"
    ),
    pytest.param(
        b"JFKL5 FETCH 1 (RFC822)",
        Command("JFKL5", "FETCH", Fetch(False, seq("1"), (FetchAttr("RFC822"),))),
        id="imaplib-fetch",
    ),
    pytest.param(
        b"JFKL6 STORE 1 +FLAGS \\Deleted",
        Command("JFKL6", "STORE", Store(False, seq("1"), "add", ("\\Deleted",))),
        id="imaplib-store",
    ),
    pytest.param(b'JFKL7 LIST "" *', Command("JFKL7", "LIST", List("", ("*",))), id="imaplib-list"),
    pytest.param(
        b'JFKL8 APPEND INBOX (\\Seen) "01-Jan-2020 12:00:00 +0000" {2}\r\nhi',
        Command(
            "JFKL8",
            "APPEND",
            Append(
                "INBOX",
                (AppendMessage(b"hi", ("\\Seen",), datetime(2020, 1, 1, 12, tzinfo=UTC)),),
            ),
        ),
        id="imaplib-append",
    ),
    pytest.param(
        b"JFKL9 STATUS INBOX (MESSAGES UNSEEN)",
        Command("JFKL9", "STATUS", Status("INBOX", ("MESSAGES", "UNSEEN"))),
        id="imaplib-status",
    ),
]


@pytest.mark.parametrize(("wire", "expected"), CLIENT_COMMANDS)
def test_it_parses_commands_as_real_clients_send_them(wire: bytes, expected: Command) -> None:
    assert parse_command(wire) == expected


def test_it_accepts_the_final_crlf_too() -> None:
    assert parse_command(b"a1 NOOP\r\n") == Command("a1", "NOOP", Noop())


# -- every command -------------------------------------------------------------------------

COMMANDS = [
    (b"a STARTTLS", StartTls()),
    (b"a logout", Logout()),
    (b"a CHECK", Check()),
    (b"a CLOSE", Close()),
    (b"a UNSELECT", Unselect()),
    (b"a NAMESPACE", Namespace()),
    (b"a EXPUNGE", Expunge()),
    (b"a UID EXPUNGE 3:5,9", Expunge(True, seq("3:5,9"))),
    (b"a ID NIL", Id(None)),
    (b"a ID ()", Id(())),
    (b'a ID ("name" NIL)', Id((("name", None),))),
    (b"a COMPRESS deflate", Compress("DEFLATE")),
    (b"a ENABLE CONDSTORE utf8=accept", Enable(("CONDSTORE", "UTF8=ACCEPT"))),
    (b"a AUTHENTICATE plain", Authenticate("PLAIN")),
    (b"a AUTHENTICATE PLAIN =", Authenticate("PLAIN", b"")),
    (b"a LOGIN {5}\r\nalice {6+}\r\nsecret", Login("alice", "secret")),
    (b'a LOGIN "al\\"ice" "back\\\\slash"', Login('al"ice', "back\\slash")),
    (b"a EXAMINE Archive", Select("Archive", readonly=True)),
    (b"a SELECT inbox", Select("INBOX")),
    (
        b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1:10 100:109)))",
        Select(
            "INBOX",
            qresync=QResync(
                67890007, 20050715194045000, seq("41,43:211,214:541"), (seq("1:10"), seq("100:109"))
            ),
        ),
    ),
    (b"a SELECT INBOX (QRESYNC (1 2) CONDSTORE)", Select("INBOX", False, True, QResync(1, 2))),
    (b"a CREATE Work/Projects", Create("Work/Projects")),
    (b"a CREATE Drafts2 (USE (\\drafts \\Sent))", Create("Drafts2", ("\\Drafts", "\\Sent"))),
    (b"a DELETE Old", Delete("Old")),
    (b"a RENAME Old New", Rename("Old", "New")),
    (b"a SUBSCRIBE Lists", Subscribe("Lists")),
    (b'a UNSUBSCRIBE "Lists"', Unsubscribe("Lists")),
    (b"a LIST Work %", List("Work", ("%",))),
    (
        b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" "Sent%") RETURN (CHILDREN STATUS '
        b"(MESSAGES UNSEEN HIGHESTMODSEQ))",
        List(
            "",
            ("INBOX", "Sent%"),
            frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}),
            frozenset({"CHILDREN", "STATUS"}),
            ("MESSAGES", "UNSEEN", "HIGHESTMODSEQ"),
            extended=True,
        ),
    ),
    (b'a LIST "" % RETURN ()', List("", ("%",), extended=True)),
    (
        b"a STATUS Sent (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT "
        b"HIGHESTMODSEQ APPENDLIMIT)",
        Status(
            "Sent",
            (
                "MESSAGES",
                "UIDNEXT",
                "UIDVALIDITY",
                "UNSEEN",
                "DELETED",
                "SIZE",
                "RECENT",
                "HIGHESTMODSEQ",
                "APPENDLIMIT",
            ),
        ),
    ),
    (
        b'a APPEND Drafts (\\Draft) {1}\r\nx (\\Seen $Label) " 7-Jul-1996 02:44:25 -0700" '
        b"~{3}\r\na\x00b",
        Append(
            "Drafts",
            (
                AppendMessage(b"x", ("\\Draft",)),
                AppendMessage(
                    b"a\x00b",
                    ("\\Seen", "$Label"),
                    datetime(1996, 7, 7, 2, 44, 25, tzinfo=PST),
                    binary=True,
                ),
            ),
        ),
    ),
    (b"a APPEND INBOX () {0}\r\n", Append("INBOX", (AppendMessage(b""),))),
    (
        b"a APPEND INBOX UTF8 (~{2+}\r\n\xc3\xa9)",
        Append("INBOX", (AppendMessage(b"\xc3\xa9", binary=True, utf8=True),)),
    ),
    (b'a GETQUOTA ""', GetQuota("")),
    (
        b'a SETQUOTA "" (STORAGE 512 message 1000)',
        SetQuota("", (("STORAGE", 512), ("MESSAGE", 1000))),
    ),
    (b"a SETQUOTA root ()", SetQuota("root", ())),
    (b"a COPY 2:4 Archive", Copy(False, seq("2:4"), "Archive")),
    (b"a UID COPY $ Archive", Copy(True, seq("$"), "Archive")),
    (b"a MOVE 1 Trash", Move(False, seq("1"), "Trash")),
    (
        b"a FETCH 1 all",
        Fetch(False, seq("1"), (FLAGS, FetchAttr("INTERNALDATE"), SIZE, FetchAttr("ENVELOPE"))),
    ),
    (b"a FETCH 1 FAST", Fetch(False, seq("1"), (FLAGS, FetchAttr("INTERNALDATE"), SIZE))),
    (
        b"a FETCH 1 FULL",
        Fetch(
            False,
            seq("1"),
            (FLAGS, FetchAttr("INTERNALDATE"), SIZE, FetchAttr("ENVELOPE"), FetchAttr("BODY")),
        ),
    ),
    (
        b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)",
        Fetch(True, seq("1:*"), (FLAGS,), 12345, True),
    ),
    (b"a STORE 1 FLAGS ()", Store(False, seq("1"), "replace", ())),
    (
        b"a STORE 1:3 (UNCHANGEDSINCE 0) -FLAGS.SILENT (\\flagged $Junk)",
        Store(False, seq("1:3"), "remove", ("\\Flagged", "$Junk"), True, 0),
    ),
    (
        b"a UID SORT (REVERSE DATE DISPLAYFROM) UTF-8 ALL",
        Sort(
            True, (SortCriterion("DATE", True), SortCriterion("DISPLAYFROM")), "UTF-8", SearchAll()
        ),
    ),
    (
        b"a SORT RETURN (MIN COUNT) (SUBJECT) US-ASCII UNSEEN",
        Sort(False, (SortCriterion("SUBJECT"),), "US-ASCII", UNSEEN, frozenset({"MIN", "COUNT"})),
    ),
    (
        b'a THREAD REFERENCES UTF-8 SINCE "5-MAR-2000"',
        Thread(False, "REFERENCES", "UTF-8", SearchDate("since", date(2000, 3, 5))),
    ),
    (
        b"a UID THREAD ORDEREDSUBJECT UTF-8 ALL",
        Thread(True, "ORDEREDSUBJECT", "UTF-8", SearchAll()),
    ),
    (b"a SEARCH RETURN () ALL", Search(False, SearchAll(), None, frozenset({"ALL"}))),
    (
        b'a UID SEARCH RETURN (SAVE MIN MAX) CHARSET "utf-8" TEXT "caf\xc3\xa9"',
        Search(True, SearchText("café"), "UTF-8", frozenset({"SAVE", "MIN", "MAX"})),
    ),
]


@pytest.mark.parametrize(("wire", "expected"), COMMANDS)
def test_it_parses_every_command_into_its_dataclass(wire: bytes, expected: object) -> None:
    assert args(wire) == expected


def test_it_names_uid_commands_with_their_prefix() -> None:
    assert parse_command(b"x uid fetch 1 flags").name == "UID FETCH"


def test_it_keeps_passwords_out_of_reprs() -> None:
    assert "secret" not in repr(parse_command(b"a LOGIN alice secret"))


# -- search keys -------------------------------------------------------------------------

SEARCH_KEYS = [
    (b"ALL", SearchAll()),
    (b"ANSWERED", SearchFlag("\\Answered")),
    (b"UNANSWERED", SearchFlag("\\Answered", False)),
    (b"DELETED", SearchFlag("\\Deleted")),
    (b"UNDELETED", SearchFlag("\\Deleted", False)),
    (b"DRAFT", SearchFlag("\\Draft")),
    (b"UNDRAFT", SearchFlag("\\Draft", False)),
    (b"FLAGGED", SearchFlag("\\Flagged")),
    (b"UNFLAGGED", SearchFlag("\\Flagged", False)),
    (b"SEEN", SearchFlag("\\Seen")),
    (b"unseen", UNSEEN),
    (b"RECENT", SearchFlag("\\Recent")),
    (b"OLD", SearchFlag("\\Recent", False)),
    (b"NEW", SearchAnd((SearchFlag("\\Recent"), UNSEEN))),
    (b"KEYWORD $Forwarded", SearchFlag("$Forwarded")),
    (b"UNKEYWORD Junk", SearchFlag("Junk", False)),
    (b"BCC bob", SearchHeader("Bcc", "bob")),
    (b"CC bob", SearchHeader("Cc", "bob")),
    (b'FROM "Bob Smith"', SearchHeader("From", "Bob Smith")),
    (b"SUBJECT {5}\r\nhello", SearchHeader("Subject", "hello")),
    (b"TO alice@example.com", SearchHeader("To", "alice@example.com")),
    (b'HEADER List-Id ""', SearchHeader("List-Id", "")),
    (b"BODY lunch", SearchBody("lunch")),
    (b"TEXT lunch", SearchText("lunch")),
    (b"BEFORE 1-Feb-1994", SearchDate("before", date(1994, 2, 1))),
    (b"ON 01-feb-1994", SearchDate("on", date(1994, 2, 1))),
    (b'SINCE "1-Feb-1994"', SearchDate("since", date(1994, 2, 1))),
    (b"SENTBEFORE 29-Feb-2024", SearchDate("before", date(2024, 2, 29), sent=True)),
    (b"SENTON 1-Jan-2000", SearchDate("on", date(2000, 1, 1), sent=True)),
    (b"SENTSINCE 31-Dec-1999", SearchDate("since", date(1999, 12, 31), sent=True)),
    (b"LARGER 10000", SearchSize("larger", 10000)),
    (b"SMALLER 5000000000", SearchSize("smaller", 5000000000)),
    (b"UID 1:100", SearchUid(seq("1:100"))),
    (b"UID $", SearchUid(seq("$"))),
    (b"$", SearchSeq(seq("$"))),
    (b"2,4:*", SearchSeq(seq("2,4:*"))),
    (b"MODSEQ 620162338", SearchModSeq(620162338)),
    (
        b'MODSEQ "/flags/\\\\draft" all 620162338',
        SearchModSeq(620162338, "/flags/\\draft", "ALL"),
    ),
    (b"NOT SEEN", SearchNot(SearchFlag("\\Seen"))),
    (b"OR SEEN FLAGGED", SearchOr(SearchFlag("\\Seen"), SearchFlag("\\Flagged"))),
    (b"(SEEN)", SearchFlag("\\Seen")),
    (b"(SEEN FLAGGED)", SearchAnd((SearchFlag("\\Seen"), SearchFlag("\\Flagged")))),
    (
        b"OR OR FROM a TO a CC a",
        SearchOr(
            SearchOr(SearchHeader("From", "a"), SearchHeader("To", "a")), SearchHeader("Cc", "a")
        ),
    ),
    (
        b"NOT (OR (FROM x) (NOT DELETED)) 1:5",
        SearchAnd(
            (
                SearchNot(SearchOr(SearchHeader("From", "x"), SearchNot(SearchFlag("\\Deleted")))),
                SearchSeq(seq("1:5")),
            )
        ),
    ),
]


@pytest.mark.parametrize(("program", "expected"), SEARCH_KEYS)
def test_it_parses_each_search_key_into_the_ast(program: bytes, expected: SearchKey) -> None:
    assert args(b"a SEARCH " + program) == Search(False, expected)


def test_it_decodes_search_strings_in_the_named_charset() -> None:
    parsed = args(b'a SEARCH CHARSET ISO-8859-1 SUBJECT "caf\xe9"')
    assert parsed == Search(False, SearchHeader("Subject", "café"), "ISO-8859-1")


def test_it_answers_an_unknown_charset_with_no_badcharset() -> None:
    with pytest.raises(BadCharsetError) as caught:
        parse_command(b"t1 SEARCH CHARSET X-MARTIAN ALL")
    assert caught.value.response().startswith(b"t1 NO [BADCHARSET] ")


# -- fetch attributes ----------------------------------------------------------------------

FETCH_ITEMS = [
    (b"ENVELOPE", FetchAttr("ENVELOPE")),
    (b"internaldate", FetchAttr("INTERNALDATE")),
    (b"RFC822.HEADER", FetchAttr("RFC822.HEADER")),
    (b"RFC822.TEXT", FetchAttr("RFC822.TEXT")),
    (b"BODY", FetchAttr("BODY")),
    (b"BODYSTRUCTURE", FetchAttr("BODYSTRUCTURE")),
    (b"MODSEQ", FetchAttr("MODSEQ")),
    (b"BODY[]", FetchBody(Section())),
    (b"BODY[HEADER]", FetchBody(Section((), "HEADER"))),
    (b"BODY.PEEK[TEXT]", FetchBody(Section((), "TEXT"), peek=True)),
    (b"BODY[1]", FetchBody(Section((1,)))),
    (b"BODY[1.2.3]", FetchBody(Section((1, 2, 3)))),
    (b"BODY[2.MIME]", FetchBody(Section((2,), "MIME"))),
    (b"body[4.2.header]", FetchBody(Section((4, 2), "HEADER"))),
    (b"BODY[3.TEXT]<10.20>", FetchBody(Section((3,), "TEXT"), Partial(10, 20))),
    (
        b'BODY[HEADER.FIELDS.NOT (Received "X-Spam Score")]',
        FetchBody(Section((), "HEADER.FIELDS.NOT", ("Received", "X-Spam Score"))),
    ),
    (
        b"BODY.PEEK[1.HEADER.FIELDS (Subject)]<0.100>",
        FetchBody(Section((1,), "HEADER.FIELDS", ("Subject",)), Partial(0, 100), True),
    ),
    (b"BINARY[]", FetchBinary(())),
    (b"BINARY[1.2]", FetchBinary((1, 2))),
    (b"BINARY.PEEK[1]<0.1024>", FetchBinary((1,), Partial(0, 1024), True)),
    (b"BINARY.SIZE[2]", FetchBinarySize((2,))),
]


@pytest.mark.parametrize(("item", "expected"), FETCH_ITEMS)
def test_it_parses_each_fetch_attribute(item: bytes, expected: FetchItem) -> None:
    assert args(b"a FETCH 1 (" + item + b")") == Fetch(False, seq("1"), (expected,))


@pytest.mark.parametrize(
    ("item", "name"),
    [
        (b"BODY.PEEK[]<0.10>", "BODY[]<0>"),
        (b"BODY[1.2.HEADER.FIELDS (From To)]", "BODY[1.2.HEADER.FIELDS (From To)]"),
        (b'BODY[HEADER.FIELDS ("X Y")]', 'BODY[HEADER.FIELDS ("X Y")]'),
        (b"BINARY.PEEK[1]<5.10>", "BINARY[1]<5>"),
        (b"BINARY.SIZE[1.2]", "BINARY.SIZE[1.2]"),
    ],
)
def test_it_names_fetch_items_as_the_response_must(item: bytes, name: str) -> None:
    parsed = args(b"a FETCH 1 " + item)
    assert isinstance(parsed, Fetch)
    assert parsed.items[0].response_name() == name  # type: ignore[union-attr]


# -- mailbox names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "utf8", "mailbox"),
    [
        (b'"~peter/mail/&U,BTFw-/&ZeVnLIqe-"', False, "~peter/mail/台北/日本語"),
        (b'"Tom &- Jerry"', False, "Tom & Jerry"),
        (b"&BBoEPgRABDcEOAQ9BDA-", False, "Корзина"),
        (b'"Entw\xc3\xbcrfe"', True, "Entwürfe"),
        (b'"&AMk-"', True, "&AMk-"),
        (b'"Entw\xc3\xbcrfe"', False, "Entwürfe"),
        (b"InBoX", False, "INBOX"),
        (b"inbox/sub", False, "inbox/sub"),
    ],
)
def test_it_decodes_mailbox_names_by_mode(wire: bytes, utf8: bool, mailbox: str) -> None:
    assert args(b"a SELECT " + wire, utf8=utf8) == Select(mailbox)


@pytest.mark.parametrize(
    "wire",
    [b"a SELECT &Jjo", b"a SELECT &AGE-", b'a CREATE "a&b"', b"a RENAME INBOX &", b"a COPY 1 &"],
    ids=["unterminated", "ascii-in-base64", "bare-amp", "rename-target", "copy-target"],
)
def test_it_parses_a_name_that_is_not_modified_utf7_and_marks_it(wire: bytes) -> None:
    """RFC 3501 §5.1.3: the command is well-formed (the name is an astring), so it is no
    parse error (BAD); the session answers NO for the name."""
    assert parse_command(wire).invalid_mailbox
    assert not parse_command(b"a SELECT INBOX").invalid_mailbox


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (b'a LIST "" "a&b"', List("", ())),
        (b'a LIST "" ("a&b" INBOX)', List("", ("INBOX",), extended=True)),
        (b'a LIST "&Jjo" *', List("", ())),
        (b'a LSUB "" &', Lsub("", None)),
    ],
)
def test_it_drops_list_patterns_that_are_not_modified_utf7(wire: bytes, expected: object) -> None:
    """A pattern or reference that is not modified UTF-7 can match no name: LIST and LSUB
    list nothing for it (as Dovecot does) rather than fail."""
    command = parse_command(wire)
    assert command.args == expected
    assert not command.invalid_mailbox


# -- malformed input -----------------------------------------------------------------------

MALFORMED = [
    pytest.param(b"", None, "Empty", id="empty"),
    pytest.param(b"+ NOOP", None, "tag", id="plus-is-no-tag"),
    pytest.param(b"\xffa NOOP", None, "tag", id="8-bit-tag"),
    pytest.param(b"a1", "a1", "command", id="tag-only"),
    pytest.param(b"a1 ", "a1", "atom", id="no-command"),
    pytest.param(b"a1 FROB", "a1", "Unknown command", id="unknown-command"),
    pytest.param(b"a1 UID NOOP", "a1", "Unknown UID command", id="unknown-uid-command"),
    pytest.param(b"a1 NOOP extra", "a1", "Unexpected", id="trailing-garbage"),
    pytest.param(b"a1 NOOP\x00", "a1", "Unexpected", id="trailing-nul"),
    pytest.param(b"a1 FETCH", "a1", "SP", id="missing-arguments"),
    pytest.param(b"a1 FETCH 0 FLAGS", "a1", "sequence", id="zero-sequence-number"),
    pytest.param(b"a1 FETCH 1:2:3 FLAGS", "a1", "sequence", id="triple-range"),
    pytest.param(b"a1 FETCH 4294967296 FLAGS", "a1", "range", id="sequence-number-too-big"),
    pytest.param(b"a1 FETCH 1 (FLAGS", "a1", "')'", id="unclosed-paren"),
    pytest.param(b"a1 FETCH 1 (FLAGS))", "a1", "Unexpected", id="extra-paren"),
    pytest.param(b"a1 FETCH 1 ()", "a1", "FETCH attribute", id="empty-fetch-list"),
    pytest.param(b"a1 FETCH 1 (ALL)", "a1", "FETCH attribute", id="macro-in-list"),
    pytest.param(b"a1 FETCH 1 BODY.PEEK", "a1", "FETCH attribute", id="peek-without-section"),
    pytest.param(b"a1 FETCH 1 BODY[MIME]", "a1", "section", id="mime-without-part"),
    pytest.param(b"a1 FETCH 1 BODY[1.0]", "a1", "section", id="part-zero"),
    pytest.param(b"a1 FETCH 1 BODY[HEADER.FIELDS ()]", "a1", "astring", id="no-header-names"),
    pytest.param(b"a1 FETCH 1 BODY[]<5.0>", "a1", "offset", id="zero-length-partial"),
    pytest.param(b"a1 FETCH 1 FLAGS (VANISHED)", "a1", "VANISHED", id="vanished-without-uid"),
    pytest.param(b"a1 UID FETCH 1 FLAGS (VANISHED)", "a1", "VANISHED", id="vanished-alone"),
    pytest.param(b"a1 FETCH 1 FLAGS (CHANGEDSINCE 0)", "a1", "non-zero", id="changedsince-0"),
    pytest.param(b"a1 LOGIN {5}\r\nab", "a1", "truncated", id="truncated-literal"),
    pytest.param(b"a1 LOGIN {5}alice x", "a1", "literal", id="literal-without-crlf"),
    pytest.param(b"a1 LOGIN {5-}\r\nalice x", "a1", "literal", id="no-such-literal-minus"),
    pytest.param(b"a1 LOGIN ~{5}\r\nalice x", "a1", "SP", id="literal8-outside-append"),
    pytest.param(b'a1 SELECT "INBOX', "a1", "quoted", id="unterminated-quote"),
    pytest.param(b'a1 SELECT "a\rb"', "a1", "quoted", id="cr-in-quoted"),
    pytest.param(b'a1 SELECT "\xff"', "a1", "UTF-8", id="bad-utf8-name"),
    pytest.param(b"a1 SELECT INBOX (QRESYNC (1 2 1:*))", "a1", "*", id="star-in-known-uids"),
    pytest.param(b"a1 SELECT INBOX (CONDSTORE CONDSTORE)", "a1", "Duplicate", id="dup-param"),
    pytest.param(b"a1 STORE 1 FLAGS \\*", "a1", "atom", id="star-flag"),
    pytest.param(b"a1 STORE 1 SETFLAGS (\\Seen)", "a1", "FLAGS", id="bad-store-action"),
    pytest.param(b"a1 SEARCH", "a1", "SP", id="search-without-keys"),
    pytest.param(b"a1 SEARCH FOO", "a1", "search key", id="unknown-search-key"),
    pytest.param(b"a1 SEARCH ()", "a1", "search key", id="empty-search-group"),
    pytest.param(b"a1 SEARCH BEFORE 31-Feb-2020", "a1", "Date", id="impossible-date"),
    pytest.param(b"a1 SEARCH SINCE 1-Foo-2020", "a1", "month", id="unknown-month"),
    pytest.param(b"a1 SEARCH SINCE 2020-01-01", "a1", "date", id="iso-date"),
    pytest.param(b"a1 SEARCH OR SEEN", "a1", "SP", id="or-with-one-key"),
    pytest.param(b"a1 SEARCH RETURN (BOGUS) ALL", "a1", "return option", id="bad-return"),
    pytest.param(b"a1 SEARCH LARGER " + b"9" * 5000, "a1", "range", id="huge-number"),
    pytest.param(b'a1 SEARCH MODSEQ "/x" all 1', "a1", "/flags/", id="bad-modseq-entry"),
    pytest.param(b"a1 APPEND INBOX", "a1", "message", id="append-without-message"),
    pytest.param(b"a1 APPEND INBOX {3}\r\na\x00b", "a1", "NUL", id="nul-in-literal"),
    pytest.param(b'a1 APPEND INBOX "1-Jan-2020" {1}\r\nx', "a1", "date-time", id="bad-datetime"),
    pytest.param(b'a1 LIST (RECURSIVEMATCH) "" *', "a1", "RECURSIVEMATCH", id="lone-recursive"),
    pytest.param(b'a1 LIST (BOGUS) "" *', "a1", "selection", id="bad-selection"),
    pytest.param(b'a1 LIST "" * RETURN (STATUS (BOGUS))', "a1", "STATUS", id="bad-status-item"),
    pytest.param(b"a1 STATUS INBOX ()", "a1", "atom", id="empty-status"),
    pytest.param(b"a1 AUTHENTICATE PLAIN !!!", "a1", "base64", id="bad-initial-response"),
    pytest.param(b"a1 AUTHENTICATE PLAIN AGFsaWNl=", "a1", "base64", id="bad-padding"),
    pytest.param(b"a1 ENABLE", "a1", "SP", id="enable-nothing"),
    pytest.param(b"a1 SORT (BOGUS) UTF-8 ALL", "a1", "sort key", id="bad-sort-key"),
    pytest.param(b"a1 SORT (DATE) ALL", "a1", "SP", id="sort-without-charset"),
    pytest.param(b"a1 CREATE x (USE (Drafts))", "a1", "special-use", id="bad-use-attr"),
]


@pytest.mark.parametrize(("wire", "tag", "message"), MALFORMED)
def test_it_rejects_malformed_commands_keeping_the_tag(
    wire: bytes, tag: str | None, message: str
) -> None:
    with pytest.raises(ParseError) as caught:
        parse_command(wire)
    assert caught.value.tag == tag
    assert message.lower() in caught.value.message.lower()
    assert caught.value.response().startswith(f"{tag or '*'} BAD ".encode())


def test_it_never_echoes_control_characters_back() -> None:
    with pytest.raises(ParseError) as caught:
        parse_command(b"a1 FETCH 1 (FLAGS\r\n* OK injected)")
    assert caught.value.response().count(b"\r\n") == 1


# -- limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "accepted"),
    [
        (b"(" * MAX_DEPTH + b"ALL" + b")" * MAX_DEPTH, True),
        (b"(" * (MAX_DEPTH + 1) + b"ALL" + b")" * (MAX_DEPTH + 1), False),
        (b"NOT " * MAX_DEPTH + b"ALL", True),
        (b"NOT " * (MAX_DEPTH + 1) + b"ALL", False),
        (b"OR ALL " * (MAX_DEPTH + 1) + b"ALL", False),
        (b"(" * 100_000, False),
    ],
    ids=["parens-at-limit", "parens-past-limit", "not-at-limit", "not-past", "or-past", "huge"],
)
def test_it_bounds_nesting_depth(program: bytes, accepted: bool) -> None:
    if accepted:
        assert isinstance(args(b"a SEARCH " + program), Search)
    else:
        with pytest.raises(ParseError, match="too deep"):
            parse_command(b"a SEARCH " + program)


@pytest.mark.parametrize(
    "template",
    [b"a FETCH 1 (%s)", b"a STORE 1 FLAGS (%s)", b"a SEARCH %s", b"a STORE 1 +FLAGS %s"],
    ids=["fetch-items", "flag-list", "search-keys", "bare-flags"],
)
def test_it_bounds_the_number_of_items(template: bytes) -> None:
    item = b"UID" if b"FETCH" in template else b"\\Seen" if b"FLAGS" in template else b"ALL"
    parse_command(template % b" ".join([item] * MAX_ITEMS))
    with pytest.raises(ParseError, match="Too many"):
        parse_command(template % b" ".join([item] * (MAX_ITEMS + 1)))


# -- robustness ----------------------------------------------------------------------------

TOKENS = [
    b"(", b")", b"[", b"]", b"<", b">", b" ", b"\r\n", b"{3}\r\nabc", b"{2+}\r\n", b"~{1}\r\n",
    b'"', b'"q"', b"\\", b"\\Seen", b"*", b"%", b"$", b"1", b"1:*", b"0", b",", b":",
    b"NIL", b"UID", b"FETCH", b"SEARCH", b"STORE", b"APPEND", b"LIST", b"SELECT", b"OR",
    b"NOT", b"BODY", b"BODY.PEEK[", b"HEADER.FIELDS", b"FLAGS", b"+FLAGS.SILENT", b"RETURN",
    b"CHARSET", b"1-Feb-1994", b'"17-Jul-1996 02:44:25 -0700"', b"QRESYNC", b"MODSEQ",
    b"&AMk-", b"&", b"\xff", b"\x00", b"INBOX",
]  # fmt: skip


@settings(max_examples=400, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_nothing_but_parse_error(data: bytes) -> None:
    try:
        parse_command(data)
    except ParseError:
        pass


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_random_token_soup_raises_nothing_but_parse_error(tokens: list[bytes]) -> None:
    try:
        parse_command(b"a1 " + b"".join(tokens))
    except ParseError as error:
        assert error.tag == "a1"


# -- sequence sets -------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "*", "1:4,7,9:*", "$", "4:2", "4294967295"])
def test_sequence_sets_print_as_they_were_written(text: str) -> None:
    assert str(seq(text)) == text


@pytest.mark.parametrize("text", ["", "0", "1:", ":1", "1,,2", "1:2:3", "$,1", "-1", "4294967296"])
def test_sequence_sets_refuse_bad_syntax(text: str) -> None:
    with pytest.raises(ValueError):
        seq(text)


@pytest.mark.parametrize(
    ("text", "largest", "intervals"),
    [
        ("1:*", 5, [(1, 5)]),
        ("7:*", 5, [(5, 7)]),
        ("*:3", 9, [(3, 9)]),
        ("4:2,3,10", 10, [(2, 4), (10, 10)]),
        ("1:3,4:6,5", 9, [(1, 6)]),
        ("*", 0, []),
        ("1:*", 0, [(1, 1)]),
    ],
)
def test_sequence_sets_resolve_star_against_the_largest_number(
    text: str, largest: int, intervals: list[tuple[int, int]]
) -> None:
    assert seq(text).resolve(largest) == intervals


def test_sequence_sets_answer_membership_and_list_their_numbers() -> None:
    parsed = seq("2,5:*")
    assert parsed.uses_star and not seq("1:3").uses_star
    assert parsed.contains(6, largest=6) and not parsed.contains(3, largest=6)
    assert list(parsed.numbers(largest=7)) == [2, 5, 6, 7]


def test_a_saved_result_must_be_substituted_before_resolving() -> None:
    with pytest.raises(ValueError, match=r"\$"):
        seq("$").resolve(10)


def test_sequence_sets_compress_numbers_into_ranges() -> None:
    assert str(SequenceSet.from_numbers([9, 5, 1, 2, 3, 2])) == "1:3,5,9"
    assert str(SequenceSet.from_numbers([])) == ""


@settings(max_examples=200, deadline=None, database=None)
@given(st.sets(st.integers(min_value=1, max_value=500), min_size=1))
def test_sequence_sets_from_numbers_round_trip(numbers: set[int]) -> None:
    built = SequenceSet.from_numbers(numbers)
    assert list(built.numbers(largest=max(numbers))) == sorted(numbers)
    assert seq(str(built)) == built


# -- modified UTF-7 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("INBOX", "INBOX"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("Tom & Jerry", "Tom &- Jerry"),
        ("Éléments envoyés", "&AMk-l&AOk-ments envoy&AOk-s"),
        ("Корзина", "&BBoEPgRABDcEOAQ9BDA-"),
        ("😀", "&2D3eAA-"),
        ("a\x01b", "a&AAE-b"),
    ],
)
def test_modified_utf7_encodes_and_decodes_rfc_3501_names(name: str, encoded: str) -> None:
    assert encode_mutf7(name) == encoded
    assert decode_mutf7(encoded) == name
    assert decode_mutf7(encoded.encode("ascii")) == name


@pytest.mark.parametrize(
    "encoded",
    ["&", "&Jjo", "&AGE-", "&U,BTFw-&ZeVnLIqe-", "a\x01b", "&ZeVnLIqe", "&2D0-", "&AOl-", "é"],
    ids=[
        "bare-amp",
        "unterminated",
        "ascii",
        "adjacent",
        "ctl",
        "no-dash",
        "lone-half",
        "bits",
        "8bit",
    ],
)
def test_modified_utf7_refuses_malformed_names(encoded: str) -> None:
    with pytest.raises(ValueError):
        decode_mutf7(encoded)


@settings(max_examples=200, deadline=None, database=None)
@given(st.text())
def test_modified_utf7_round_trips_any_text(name: str) -> None:
    encoded = encode_mutf7(name)
    assert encoded.isascii()
    assert decode_mutf7(encoded) == name
