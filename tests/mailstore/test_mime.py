"""Parsing at delivery: the MIME tree and its offsets, ENVELOPE, sort keys, body text,
and never raising on broken mail."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import Message
from email.parser import BytesParser

import pytest

from apps.mailstore.mime import (
    MISSING_DOMAIN,
    MISSING_MAILBOX,
    addresses_text,
    base_subject,
    decode_transfer,
    decode_words,
    parse_addresses,
    parse_date,
    parse_message,
    split_header,
)

# Nested multiparts, 8-bit UTF-8 text and header (RFC 6532), RFC 2231 continued and
# encoded parameters, an attached message/rfc822 and a group address.
SAMPLE = "\r\n".join(
    [
        "From: =?utf-8?q?J=C3=B6rg?= Schmidt <joerg@example.org>",
        'To: Alice <alice@Example.COM>, "Bob, Jr." <bob@example.net>',
        "Cc: Friends: carol@example.org, (Dave) dave@example.org;",
        "Subject: Re: [list] Fwd: Grüße",
        " =?utf-8?q?aus_K=C3=B6ln?=",
        "Date: Tue, 2 Jan 2024 10:00:00 +0100",
        "Message-ID: <m1@example.org>",
        "In-Reply-To: <m0@example.org>",
        "References: <r0@example.org>",
        "  <m0@example.org>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="outer"',
        "",
        "Preamble.",
        "--outer",
        'Content-Type: multipart/alternative; boundary="inner"',
        "",
        "--inner",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        "Grüße aus Köln",
        "",
        "--inner",
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "<p>Gr=C3=BC=C3=9Fe <b>aus</b> K=C3=B6ln</p><script>var hidden;</script>",
        "",
        "--inner--",
        "",
        "--outer",
        "Content-Type: application/pdf; name*0*=utf-8''%E2%82%AC%20rates;",
        ' name*1=" 2024.pdf"',
        "Content-Disposition: attachment;",
        " filename*=utf-8''%E2%82%AC%20rates%202024.pdf",
        "Content-Transfer-Encoding: base64",
        "",
        "JVBERi0xLjQK",
        "",
        "--outer",
        "Content-Type: message/rfc822",
        "Content-Description: Forwarded message",
        "",
        "From: Carol <carol@example.org>",
        "Subject: Inner",
        "Date: Mon, 1 Jan 2024 09:00:00 +0000",
        "",
        "Inner body",
        "",
        "--outer--",
        "Epilogue",
        "",
    ]
).encode()


def walk(node: dict):
    """Our nodes in the order Message.walk() visits Python's parts."""
    yield node
    for child in node.get("parts", ()):
        yield from walk(child)
    if "body" in node:
        yield from walk(node["body"])


def as_bytes(text: str) -> bytes:
    """Undo the email package's surrogateescape reading of raw octets."""
    return text.encode("ascii", "surrogateescape")


def python_parts(raw: bytes) -> list[Message]:
    return list(BytesParser(policy=policy.compat32).parsebytes(raw).walk())


# --- the MIME tree -------------------------------------------------------------------------


def test_it_describes_every_part_with_its_fields():
    body = parse_message(SAMPLE).body
    alternative, _pdf, attached = body["parts"]
    plain, html = alternative["parts"]
    assert (body["type"], body["subtype"], body["params"]) == (
        "multipart",
        "mixed",
        [["boundary", "outer"]],
    )
    assert (plain["type"], plain["subtype"], plain["encoding"]) == ("text", "plain", "8bit")
    assert plain["params"] == [["charset", "utf-8"]]
    assert (plain["size"], plain["lines"]) == (len("Grüße aus Köln\r\n".encode()), 1)
    assert html["encoding"] == "quoted-printable"
    assert attached["description"] == "Forwarded message"
    assert attached["body"]["params"] == [["charset", "us-ascii"]]  # RFC 2045 §5.2 default


def test_rfc2231_parameters_are_joined_and_decoded_like_dovecot_shows_them():
    pdf = parse_message(SAMPLE).body["parts"][1]
    assert pdf["params"] == [["name", "€ rates 2024.pdf"]]
    assert pdf["disposition"] == ["attachment", [["filename", "€ rates 2024.pdf"]]]
    assert pdf["filename"] == "€ rates 2024.pdf"


def test_a_message_part_carries_its_own_envelope_and_body():
    attached = parse_message(SAMPLE).body["parts"][2]
    assert attached["envelope"]["subject"] == "Inner"
    assert attached["envelope"]["from"] == [["Carol", None, "carol", "example.org"]]
    assert attached["envelope"]["sender"] == attached["envelope"]["from"]
    inner = attached["body"]
    assert inner["header_start"] == attached["body_start"]
    assert SAMPLE[inner["body_start"] : inner["end"]] == b"Inner body\r\n"
    assert attached["lines"] == 5


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"], ids=["crlf", "bare-lf"])
def test_offsets_cut_the_same_bytes_the_email_package_finds(newline):
    raw = SAMPLE.replace(b"\r\n", newline)
    ours = list(walk(parse_message(raw).body))
    theirs = python_parts(raw)
    assert [f"{node['type']}/{node['subtype']}" for node in ours] == [
        part.get_content_type() for part in theirs
    ]
    for node, part in zip(ours, theirs, strict=True):
        header = split_header(raw[node["header_start"] : node["body_start"]])
        assert [(field.name, field.value) for field in header] == [
            (name, as_bytes(re.sub(r"\r?\n", "", value))) for name, value in part.raw_items()
        ]
        if not part.is_multipart():
            content = raw[node["body_start"] : node["end"]]
            assert decode_transfer(content, node["encoding"]) == part.get_payload(decode=True)


@pytest.mark.parametrize(
    "encoded, decoded",
    [
        (b"hello  \r\nbar=\r\n\r\n", b"hello\r\nbar\r\n"),  # §6.7 rules 3 and 5
        (b"foo\t \t= \r\n=62\r\n", b"foo\t \tb\r\n"),  # "= " then line break is soft
        (b"=C3=a9t=C3=A9 \nend=", "été\nend".encode()),  # LF lines, lower-case hex
        (b"a=3D=ZZ", b"a==ZZ"),  # a bad "=" sequence is kept as it is (§6.7 note 2)
    ],
)
def test_quoted_printable_is_decoded_as_rfc_2045_says(encoded, decoded):
    assert decode_transfer(encoded, "quoted-printable") == decoded


def test_the_root_spans_the_whole_message_and_its_header():
    parsed = parse_message(SAMPLE)
    assert parsed.body["header_start"] == 0
    assert parsed.body["end"] == len(SAMPLE)
    assert SAMPLE[: parsed.header_size].endswith(b'boundary="outer"\r\n\r\n')


def test_a_digest_defaults_its_parts_to_messages():
    raw = (
        b'Content-Type: multipart/digest; boundary="d"\r\n\r\n'
        b"--d\r\n\r\nSubject: first\r\n\r\none\r\n"
        b"--d\r\nContent-Type: text/plain\r\n\r\ntwo\r\n--d--\r\n"
    )
    first, second = parse_message(raw).body["parts"]
    assert (first["type"], first["subtype"]) == ("message", "rfc822")  # RFC 2046 §5.1.5
    assert first["envelope"]["subject"] == "first"
    assert (second["type"], second["subtype"]) == ("text", "plain")


def test_a_boundary_must_be_the_whole_line():
    raw = (
        b'Content-Type: multipart/mixed; boundary="ab"\r\n\r\n'
        b"--ab\r\n\r\n--abc is not ours\r\n--ab  \r\n\r\nsecond\r\n--ab--\r\n"
    )
    first, second = parse_message(raw).body["parts"]
    assert raw[first["body_start"] : first["end"]] == b"--abc is not ours"
    assert raw[second["body_start"] : second["end"]] == b"second"


def test_a_multipart_without_delimiters_gets_one_empty_part_as_dovecot_shows():
    parsed = parse_message(b'Content-Type: multipart/mixed; boundary="x"\r\n\r\nno parts\r\n')
    (empty,) = parsed.body["parts"]
    assert (empty["type"], empty["size"], empty["lines"]) == ("text", 0, 0)


def test_a_multipart_without_boundary_is_shown_as_text():
    body = parse_message(b"Content-Type: multipart/mixed\r\n\r\n--x\r\nhello\r\n").body
    assert (body["type"], body["subtype"], "parts" in body) == ("text", "plain", False)


def test_a_missing_close_delimiter_ends_the_last_part_at_the_end():
    raw = b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\n\r\nunfinished\r\n'
    (part,) = parse_message(raw).body["parts"]
    assert raw[part["body_start"] : part["end"]] == b"unfinished\r\n"


# --- ENVELOPE --------------------------------------------------------------------------------


def test_the_envelope_keeps_raw_header_text_and_defaults_sender_to_from():
    envelope = parse_message(SAMPLE).envelope
    joerg = [["=?utf-8?q?J=C3=B6rg?= Schmidt", None, "joerg", "example.org"]]
    assert envelope == {
        "date": "Tue, 2 Jan 2024 10:00:00 +0100",
        "subject": "Re: [list] Fwd: Grüße =?utf-8?q?aus_K=C3=B6ln?=",
        "from": joerg,
        "sender": joerg,
        "reply_to": joerg,
        "to": [
            ["Alice", None, "alice", "Example.COM"],
            ["Bob, Jr.", None, "bob", "example.net"],
        ],
        "cc": [
            [None, None, "Friends", None],
            [None, None, "carol", "example.org"],
            ["Dave", None, "dave", "example.org"],
            [None, None, None, None],
        ],
        "bcc": None,
        "in_reply_to": "<m0@example.org>",
        "message_id": "<m1@example.org>",
    }
    json.dumps(envelope)


@pytest.mark.parametrize(
    "field, expected",
    [
        ("<user (comment)@ (comment) domain.org>", "comment <user@domain.org>"),
        ("=?utf-8?q?J=C3=B6rg?= <j@x.org>, k@y.org", "Jörg <j@x.org>, k@y.org"),
        ("team: a@x.org, (B) b@x.org;, c", "team: a@x.org, B <b@x.org>;, c"),
        ('"quoted \\" name" <q@x.org>', 'quoted " name <q@x.org>'),
    ],
)
def test_addresses_text_is_what_the_addresses_mean(field, expected):
    """SEARCH FROM/TO/CC/BCC (RFC 9051 §6.4.4) also sees the parsed addresses: comments
    and quoting gone, RFC 2047 names decoded, groups as "name:" ... ";"."""
    assert addresses_text(parse_addresses(field)) == expected


def test_an_empty_reply_to_defaults_to_from_too():
    envelope = parse_message(b"From: a@example.org\r\nReply-To:\r\n\r\n").envelope
    assert envelope["reply_to"] == [[None, None, "a", "example.org"]]


@pytest.mark.parametrize(
    ("header", "addresses"),
    [
        (
            "Terry Gray <gray@cac.washington.edu>",
            [["Terry Gray", None, "gray", "cac.washington.edu"]],
        ),
        ('"Doe, John" <john@example.com>', [["Doe, John", None, "john", "example.com"]]),
        ('"a \\"quoted\\" name" <q@example.com>', [['a "quoted" name', None, "q", "example.com"]]),
        ("john@example.com (John Doe)", [["John Doe", None, "john", "example.com"]]),
        ("John Q. Public <jqp@example.com>", [["John Q. Public", None, "jqp", "example.com"]]),
        (
            "=?utf-8?q?J=C3=B6rg?= <j@example.org>",
            [["=?utf-8?q?J=C3=B6rg?=", None, "j", "example.org"]],
        ),
        ("undisclosed-recipients:;", [[None, None, "undisclosed-recipients", None], [None] * 4]),
        (
            "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
            [
                [None, None, "A Group", None],
                ["Ed Jones", None, "c", "a.test"],
                [None, None, "joe", "where.test"],
                ["John", None, "jdoe", "one.test"],
                [None] * 4,
            ],
        ),
        (
            "<@route.example,@other.example:user@host.example>",
            [[None, "@route.example,@other.example", "user", "host.example"]],
        ),
        ('"john doe"@example.com', [[None, None, "john doe", "example.com"]]),
        ("user@[192.0.2.1]", [[None, None, "user", "[192.0.2.1]"]]),
        ("user", [[None, None, "user", MISSING_DOMAIN]]),
        ("@example.org", [[None, None, MISSING_MAILBOX, "example.org"]]),
        (
            "a@b.example, , c@d.example",
            [[None, None, "a", "b.example"], [None, None, "c", "d.example"]],
        ),
        ("", []),
        ("<>", []),
    ],
)
def test_addresses_parse_as_imap_wants_them(header, addresses):
    assert parse_addresses(header) == addresses


# --- SEARCH, SORT and THREAD keys --------------------------------------------------------------


def test_it_fills_the_sort_and_thread_keys():
    parsed = parse_message(SAMPLE)
    assert parsed.subject == "Re: [list] Fwd: Grüße aus Köln"
    assert parsed.base_subject == "Grüße aus Köln"
    assert (parsed.from_addr, parsed.from_name) == ("joerg@example.org", "Jörg Schmidt")
    assert (parsed.to_addr, parsed.to_name) == ("alice@example.com", "Alice")
    # RFC 5256 §3: the first address of "Cc: Friends: carol@..., ...;" is the group's
    # start marker (RFC 9051 §7.5.2), whose addr-mailbox is the group name.
    assert (parsed.cc_addr, parsed.cc_name) == ("friends", "")
    assert parsed.sent_date == datetime(2024, 1, 2, 9, 0, tzinfo=UTC)
    assert parsed.message_id == "<m1@example.org>"
    assert parsed.in_reply_to == "<m0@example.org>"
    assert parsed.references == ("<r0@example.org>", "<m0@example.org>")


@pytest.mark.parametrize(
    ("subject", "base"),
    [
        ("hello", "hello"),
        ("Re: hello", "hello"),
        ("RE: Re: re:hello", "hello"),
        ("Fwd: hello", "hello"),
        ("Fw: hello", "hello"),
        ("Re [list]: hello", "hello"),
        ("[list] Re: hello", "hello"),
        ("Re: [list] hello", "hello"),
        ("[list]", "[list]"),
        ("hello (fwd)", "hello"),
        ("hello (FWD) (fwd)  ", "hello"),
        ("[Fwd: Re: hello]", "hello"),
        ("Re: [fwd: hello (fwd)]", "hello"),
        ("Re:   hello\tworld", "hello world"),
        ("Resume: hello", "Resume: hello"),
        ("Re:", ""),
        ("", ""),
    ],
)
def test_base_subject_follows_rfc5256(subject, base):
    assert base_subject(subject) == base


@pytest.mark.parametrize(
    ("subject", "base"),
    [
        ("[a]" * 100_000, "[a]"),
        ("Re: " * 100_000 + "x", "x"),
        ("x" + " (fwd)" * 100_000, "x"),
        ("[fwd: " * 10_000 + "x" + "]" * 10_000, "x"),
    ],
    ids=["blobs", "replies", "forwards", "nested-fwd"],
)
def test_base_subject_stays_linear_on_hostile_subjects(subject, base):
    assert base_subject(subject) == base


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ("plain text", "plain text"),
        ("=?iso-8859-1?q?caf=E9?=", "café"),
        ("=?utf-8?b?w6k=?= =?utf-8?b?w6k=?=", "éé"),
        ("Re: =?utf-8?q?caf=C3=A9?= ok", "Re: café ok"),
    ],
)
def test_encoded_words_are_decoded(value, decoded):
    assert decode_words(value) == decoded


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "Tue, 2 Jan 2024 10:00:00 +0100",
            datetime(2024, 1, 2, 10, tzinfo=timezone(timedelta(hours=1))),
        ),
        ("2 Jan 2024 10:00:00 -0000", datetime(2024, 1, 2, 10, tzinfo=UTC)),
        ("yesterday", None),
        ("Tue, 99 Foo 2024 99:99:99 +9999", None),
        ("", None),
        (None, None),
    ],
)
def test_dates_are_aware_or_none(value, expected):
    assert parse_date(value) == expected


def test_a_message_without_headers_has_empty_keys():
    parsed = parse_message(b"\r\njust a body\r\n")
    assert parsed.header_size == 2
    assert (parsed.subject, parsed.from_addr, parsed.message_id, parsed.sent_date) == (
        "",
        "",
        "",
        None,
    )
    assert parsed.envelope["from"] is None


# --- body text ---------------------------------------------------------------------------------


def test_the_text_holds_decoded_text_parts_and_nothing_else():
    text = parse_message(SAMPLE).text
    assert text.count("Grüße aus Köln") == 2  # the plain part and the HTML part's text
    assert "Inner body" in text
    assert "<p>" not in text
    assert "hidden" not in text  # scripts are not text
    assert "JVBER" not in text


def test_undeclared_8bit_text_is_read_as_utf8():
    assert parse_message("Subject: x\r\n\r\nnaïve\r\n".encode()).text == "naïve\r\n"


def test_the_text_is_capped():
    parsed = parse_message(b"\r\n" + b"word " * 300_000)
    assert len(parsed.text) == 1_000_000


# --- robustness ------------------------------------------------------------------------------

NESTED_MULTIPARTS = b"".join(
    b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n) for n in range(150)
)
NESTED_MESSAGES = b"Content-Type: message/rfc822\r\n\r\n" * 150 + b"Subject: deep\r\n\r\nbody"

BROKEN = [
    b"",
    b"\r\n",
    b"\n\n",
    b"Subject: only a header",
    b"no header and no blank line",
    b" continuation first\r\nSubject: x\r\n\r\n",
    b"Content-Type: multipart/mixed\r\n\r\nno boundary",
    b'Content-Type: multipart/mixed; boundary=""\r\n\r\n--\r\n--\r\n',
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n--b\r\n--b--',
    b"Content-Type: text/plain; charset=x-bogus\r\n\r\n\xff\xfe",
    b"Content-Type: text/plain; charset=idna\r\n\r\n\xff\xfe",
    b"Content-Type: text/plain; charset=rot13\r\n\r\nhello",
    b"Content-Type: text/plain; charset=\"utf\x00-8\"; name*=utf\x00-8''a\r\n\r\nhi",
    b"Content-Type: text\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!=",
    b"Content-Type: /\r\nContent-Disposition: ;;; =\r\n\r\n",
    b"Content-Type: text/plain; name*0*=utf-8''%E2; name*2=x; name*=\r\n\r\n",
    b"Content-Type: text/plain; name*=x''%ZZ%\r\n\r\n",
    b"Subject: \xff\xfe caf\xe9\r\nFrom: \xe9l\xe8ve <a@b>\r\n\r\n",
    b"Subject: a\x00b\r\nFrom: <\x00@x>\r\n\r\nbody\x00",
    b'From: <<<@@@>>> "unterminated, (comment (nested\r\nTo: ::;;,,<>\r\n\r\n',
    b"From: \\\r\nCc: (\\\r\nTo: a@b (c\\\r\n\r\n",
    b"Date: 99 Foo 99999 99:99:99 +9999\r\n\r\n",
    b"Subject: =?utf-8?b?!!!?= =?x-bogus?q?=FF?= =?utf-8?q?\r\n\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"Content-Type: text/html\r\n\r\n<scr<script>ipt><!-- <style> &#xdddddd; &bogus; </",
    b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n",
    b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=\r\n=Z",
    b"Content-Language: (only a comment)\r\nContent-Location:\r\n\r\n",
    b'Content-Type: text/plain; name="' + b"a;" * 500_000 + b"\r\n\r\n",
    NESTED_MULTIPARTS,
    NESTED_MESSAGES,
]


def assert_storable(raw: bytes) -> None:
    parsed = parse_message(raw)
    for value in (parsed.envelope, parsed.body, parsed.text, parsed.subject, parsed.from_name):
        dumped = json.dumps(value, ensure_ascii=False)
        dumped.encode("utf-8")  # no lone surrogates: PostgreSQL would refuse them
        assert "\\u0000" not in dumped and "\x00" not in dumped
    for node in walk(parsed.body):
        assert node["header_start"] <= node["body_start"] <= node["end"] <= len(raw)
        assert ("parts" in node) == (node["type"] == "multipart")


@pytest.mark.parametrize("raw", BROKEN, ids=range(len(BROKEN)))
def test_broken_mail_never_raises_and_stays_storable(raw):
    assert_storable(raw)


def test_nesting_stops_at_the_limit_instead_of_recursing_forever():
    depth = 0
    node = parse_message(NESTED_MULTIPARTS).body
    while "parts" in node:
        node, depth = node["parts"][0], depth + 1
    assert depth == 100


def test_randomly_damaged_mail_never_raises():
    rng = random.Random(5)
    for _ in range(150):
        raw = bytearray(SAMPLE)
        for _ in range(rng.randint(1, 12)):
            at = rng.randrange(len(raw))
            if rng.random() < 0.5:
                del raw[at : at + rng.randint(1, 20)]
            else:
                raw[at:at] = bytes(rng.choice(b'\r\n-:;"<>()=\\\x00\xff ') for _ in range(3))
        assert_storable(bytes(raw))
