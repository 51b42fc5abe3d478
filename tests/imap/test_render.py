"""FETCH rendering: IMAP strings, ENVELOPE, BODY / BODYSTRUCTURE, sections and BINARY,
checked against IMAP text written out from RFC 9051 / RFC 3501 and the email package."""

from __future__ import annotations

from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import Any

import pytest

from apps.imap.render import (
    decode_section_binary,
    extract_section,
    imap_astring,
    imap_binary,
    imap_literal,
    imap_string,
    parse_section,
    render_body,
    render_envelope,
    slice_partial,
)
from apps.mailstore.mime import UnknownTransferEncoding, parse_message
from tests.mailstore.test_mime import SAMPLE


def lit(text: str) -> bytes:
    """An IMAP literal, the way a reader counts it."""
    data = text.encode()
    return b"{%d}\r\n" % len(data) + data


def python_message(raw: bytes) -> Message:
    return BytesParser(policy=policy.compat32).parsebytes(raw)


def payload(message: Message) -> Any:
    """get_payload(), typed as loosely as it behaves: a list of parts, or a str."""
    return message.get_payload()


def fields(message: Message) -> list[tuple[str, str]]:
    return list(message.raw_items())


def as_bytes(text: str) -> bytes:
    return text.encode("ascii", "surrogateescape")


# --- strings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (None, b"NIL"),
        ("", b'""'),
        ("NIL", b'"NIL"'),
        ("hello world", b'"hello world"'),
        ('say "hi" \\o/', b'"say \\"hi\\" \\\\o/"'),
        (b"bytes too", b'"bytes too"'),
        ("two\r\nlines", b"{10}\r\ntwo\r\nlines"),
        ("bare\nLF", b"{7}\r\nbare\nLF"),
        ("tab\there", b"{8}\r\ntab\there"),
        ("Grüße", lit("Grüße")),
        (b"\xff\xfe", b"{2}\r\n\xff\xfe"),
        ("x" * 1000, b'"' + b"x" * 1000 + b'"'),
        ("x" * 1001, b"{1001}\r\n" + b"x" * 1001),
    ],
)
def test_imap_string_quotes_what_it_can_and_sends_the_rest_as_a_literal(value, wire):
    assert imap_string(value) == wire


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("Grüße", '"Grüße"'.encode()),
        (b"\xff\xfe", b"{2}\r\n\xff\xfe"),
        ("line\r\n", b"{6}\r\nline\r\n"),
    ],
)
def test_imap_string_quotes_valid_utf8_for_utf8_clients(value, wire):
    assert imap_string(value, utf8=True) == wire


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("INBOX", b"INBOX"),
        ("Sent/2024", b"Sent/2024"),
        ("with space", b'"with space"'),
        ("", b'""'),
        ("wild*", b'"wild*"'),
        ("Entwürfe", lit("Entwürfe")),
    ],
)
def test_imap_astring_is_an_atom_when_it_can_be(value, wire):
    assert imap_astring(value) == wire


def test_a_literal_never_carries_nul_but_literal8_does():
    assert imap_literal(b"a\x00b") == b"{3}\r\na\x80b"
    assert imap_binary(b"a\x00b") == b"~{3}\r\na\x00b"
    assert imap_binary(b"ab") == b"{2}\r\nab"


# --- ENVELOPE and BODY / BODYSTRUCTURE -------------------------------------------------------

# The message of RFC 3501 §8 (and RFC 9051 §8): its FETCH FULL answer is in the RFC.
RFC_BODY = (b"y" * 31 + b"\r\n") * 91 + b"z" * 23 + b"\r\n"  # 3028 octets in 92 lines
RFC_EXAMPLE = (
    b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
    b"From: Terry Gray <gray@cac.washington.edu>\r\n"
    b"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
    b"To: imap@cac.washington.edu\r\n"
    b"cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
    b"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n" + RFC_BODY
)


def test_the_rfc_example_envelope_comes_out_as_the_rfc_shows_it():
    assert render_envelope(parse_message(RFC_EXAMPLE).envelope) == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
        b'NIL NIL "<B27397-0100000@cac.washington.edu>")'
    )


def test_the_rfc_example_body_comes_out_as_the_rfc_shows_it():
    # Types and parameter names are lower-cased; IMAP compares them case-insensitively.
    body = parse_message(RFC_EXAMPLE).body
    assert render_body(body, extensible=False) == (
        b'("text" "plain" ("charset" "US-ASCII") NIL NIL "7bit" 3028 92)'
    )
    assert render_body(body, extensible=True) == (
        b'("text" "plain" ("charset" "US-ASCII") NIL NIL "7bit" 3028 92 NIL NIL NIL NIL)'
    )


def test_the_sample_envelope_sends_8bit_text_as_literals_and_groups_as_markers():
    assert render_envelope(parse_message(SAMPLE).envelope) == (
        b'("Tue, 2 Jan 2024 10:00:00 +0100" '
        + lit("Re: [list] Fwd: Grüße =?utf-8?q?aus_K=C3=B6ln?=")
        + b' (("=?utf-8?q?J=C3=B6rg?= Schmidt" NIL "joerg" "example.org"))'
        b' (("=?utf-8?q?J=C3=B6rg?= Schmidt" NIL "joerg" "example.org"))'
        b' (("=?utf-8?q?J=C3=B6rg?= Schmidt" NIL "joerg" "example.org"))'
        b' (("Alice" NIL "alice" "Example.COM")("Bob, Jr." NIL "bob" "example.net"))'
        b' ((NIL NIL "Friends" NIL)(NIL NIL "carol" "example.org")'
        b'("Dave" NIL "dave" "example.org")(NIL NIL NIL NIL))'
        b' NIL "<m0@example.org>" "<m1@example.org>")'
    )


INNER_ENVELOPE = (
    b'("Mon, 1 Jan 2024 09:00:00 +0000" "Inner" (("Carol" NIL "carol" "example.org")) '
    b'(("Carol" NIL "carol" "example.org")) (("Carol" NIL "carol" "example.org")) '
    b"NIL NIL NIL NIL NIL)"
)


def test_the_sample_bodystructure_is_exact():
    euro = lit("€ rates 2024.pdf")
    assert render_body(parse_message(SAMPLE).body, extensible=True) == (
        b'((("text" "plain" ("charset" "utf-8") NIL NIL "8bit" 19 1 NIL NIL NIL NIL)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 73 1 NIL NIL NIL NIL)'
        b' "alternative" ("boundary" "inner") NIL NIL NIL)'
        b'("application" "pdf" ("name" ' + euro + b') NIL NIL "base64" 14'
        b' NIL ("attachment" ("filename" ' + euro + b")) NIL NIL)"
        b'("message" "rfc822" NIL NIL "Forwarded message" "7bit" 101 '
        + INNER_ENVELOPE
        + b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 1 NIL NIL NIL NIL)'
        b" 5 NIL NIL NIL NIL)"
        b' "mixed" ("boundary" "outer") NIL NIL NIL)'
    )


def test_the_sample_body_leaves_out_extension_data():
    euro = lit("€ rates 2024.pdf")
    assert render_body(parse_message(SAMPLE).body, extensible=False) == (
        b'((("text" "plain" ("charset" "utf-8") NIL NIL "8bit" 19 1)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 73 1) "alternative")'
        b'("application" "pdf" ("name" ' + euro + b') NIL NIL "base64" 14)'
        b'("message" "rfc822" NIL NIL "Forwarded message" "7bit" 101 '
        + INNER_ENVELOPE
        + b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 1) 5) "mixed")'
    )


def test_extension_fields_of_a_part_are_all_rendered():
    raw = (
        b'Content-Type: text/x-notes; format="flowed"\r\n'
        b"Content-ID: <part@example.org>\r\n"
        b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
        b"Content-Disposition: inline; size=3\r\n"
        b"Content-Language: en, de (German)\r\n"
        b"Content-Location: https://example.org/notes\r\n"
        b"\r\nabc"
    )
    assert render_body(parse_message(raw).body, extensible=True) == (
        b'("text" "x-notes" ("format" "flowed" "charset" "us-ascii") "<part@example.org>" NIL'
        b' "7bit" 3 0 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("inline" ("size" "3")) ("en" "de")'
        b' "https://example.org/notes")'
    )


# --- sections --------------------------------------------------------------------------------

LEAVES = {"1.1": (0, 0), "1.2": (0, 1), "2": (1,), "3.1": (2, 0)}


def python_part(message: Message, path: tuple[int, ...]) -> Message:
    for index in path:
        message = payload(message)[index]
    return message


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"], ids=["crlf", "bare-lf"])
@pytest.mark.parametrize("section", LEAVES)
def test_a_part_is_the_bytes_the_email_package_has_for_it(section, newline):
    raw = SAMPLE.replace(b"\r\n", newline)
    part = python_part(python_message(raw), LEAVES[section])
    body = parse_message(raw).body
    # compat32 hands 8-bit text back decoded with its charset; encoding it again gives the octets.
    octets = payload(part).encode(part.get_content_charset("ascii"), "surrogateescape")
    assert extract_section(raw, body, section) == octets
    decoded = part.get_payload(decode=True)
    assert decode_section_binary(raw, body, tuple(map(int, section.split(".")))) == decoded
    mime = python_message(extract_section(raw, body, section + ".MIME") or b"")
    assert fields(mime) == fields(part)


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"], ids=["crlf", "bare-lf"])
def test_header_and_text_split_the_message_where_the_email_package_does(newline):
    raw = SAMPLE.replace(b"\r\n", newline)
    body = parse_message(raw).body
    header, text = extract_section(raw, body, "HEADER"), extract_section(raw, body, "TEXT")
    assert header is not None and text is not None
    assert header + text == raw == extract_section(raw, body, "")
    assert fields(python_message(header)) == fields(python_message(raw))
    assert header.endswith(newline * 2)


def test_an_attached_message_has_its_own_header_text_and_parts():
    body = parse_message(SAMPLE).body
    attached = payload(payload(python_message(SAMPLE))[2])[0]
    header = extract_section(SAMPLE, body, "3.HEADER")
    assert header is not None
    assert fields(python_message(header)) == fields(attached)
    assert extract_section(SAMPLE, body, "3.TEXT") == as_bytes(payload(attached))
    assert extract_section(SAMPLE, body, "3.1") == b"Inner body\r\n"
    assert extract_section(SAMPLE, body, "3") == header + b"Inner body\r\n"
    assert extract_section(SAMPLE, body, "3.MIME") == (
        b"Content-Type: message/rfc822\r\nContent-Description: Forwarded message\r\n\r\n"
    )


def test_header_fields_keeps_exact_lines_in_message_order_and_ends_with_a_blank_line():
    body = parse_message(SAMPLE).body
    assert extract_section(SAMPLE, body, "HEADER.FIELDS (subject FROM)") == (
        b"From: =?utf-8?q?J=C3=B6rg?= Schmidt <joerg@example.org>\r\n"
        + "Subject: Re: [list] Fwd: Grüße\r\n =?utf-8?q?aus_K=C3=B6ln?=\r\n".encode()
        + b"\r\n"
    )
    assert extract_section(SAMPLE, body, '3.HEADER.FIELDS ("Subject")') == b"Subject: Inner\r\n\r\n"
    assert extract_section(SAMPLE, body, "HEADER.FIELDS (X-Absent)") == b"\r\n"


def test_header_fields_not_keeps_every_other_field():
    body = parse_message(SAMPLE).body
    rest = extract_section(SAMPLE, body, "HEADER.FIELDS.NOT (Subject References Content-Type)")
    expected = python_message(SAMPLE)
    for name in ("Subject", "References", "Content-Type"):
        del expected[name]
    assert fields(python_message(rest or b"")) == fields(expected)
    assert rest is not None and rest.endswith(b"MIME-Version: 1.0\r\n\r\n")
    assert extract_section(SAMPLE, body, "3.HEADER.FIELDS.NOT (From Date)") == (
        b"Subject: Inner\r\n\r\n"
    )


def test_a_message_that_is_not_multipart_has_only_part_one():
    raw = b"Subject: one\r\nContent-Type: text/plain\r\n\r\nthe body\r\n"
    body = parse_message(raw).body
    assert extract_section(raw, body, "1") == b"the body\r\n"
    assert extract_section(raw, body, "1.MIME") == extract_section(raw, body, "HEADER")
    assert extract_section(raw, body, "2") is None


def test_a_header_without_blank_line_still_gets_one_from_header_fields():
    raw = b"Subject: no body"
    body = parse_message(raw).body
    assert extract_section(raw, body, "HEADER") == raw
    assert extract_section(raw, body, "HEADER.FIELDS (Subject)") == b"Subject: no body\r\n\r\n"


@pytest.mark.parametrize("section", ["4", "1.3", "1.1.1", "2.1", "2.HEADER", "1.TEXT", "9.MIME"])
def test_a_section_that_does_not_exist_is_none(section):
    assert extract_section(SAMPLE, parse_message(SAMPLE).body, section) is None


@pytest.mark.parametrize("section", ["MIME", "FOO", "1.FOO", "0", "1.0", "HEADER.TEXT"])
def test_a_malformed_section_is_refused(section):
    with pytest.raises(ValueError):
        parse_section(section)


@pytest.mark.parametrize(
    ("section", "parsed"),
    [
        ("", ((), None, ())),
        ("text", ((), "TEXT", ())),
        ("1.2.3", ((1, 2, 3), None, ())),
        ("4.2.header", ((4, 2), "HEADER", ())),
        ("HEADER.FIELDS (From To)", ((), "HEADER.FIELDS", ("From", "To"))),
        (
            '1.HEADER.FIELDS.NOT ("X Y" "a\\"b" Cc)',
            ((1,), "HEADER.FIELDS.NOT", ("X Y", 'a"b', "Cc")),
        ),
    ],
)
def test_sections_parse_as_rfc9051_writes_them(section, parsed):
    assert parse_section(section) == parsed


@pytest.mark.parametrize(
    ("origin", "count", "cut"),
    [(0, 3, b"012"), (8, 5, b"89"), (10, 1, b""), (42, 1, b""), (4, None, b"456789")],
)
def test_a_partial_fetch_cuts_at_most_count_octets_from_origin(origin, count, cut):
    assert slice_partial(b"0123456789", origin, count) == cut


# --- BINARY ------------------------------------------------------------------------------------


def test_binary_undoes_the_transfer_encoding():
    body = parse_message(SAMPLE).body
    assert decode_section_binary(SAMPLE, body, (2,)) == b"%PDF-1.4\n"
    html = decode_section_binary(SAMPLE, body, (1, 2)) or b""
    assert html.startswith("<p>Grüße <b>aus</b> Köln</p>".encode())
    assert decode_section_binary(SAMPLE, body, ()) == SAMPLE
    assert decode_section_binary(SAMPLE, body, (3,)) == extract_section(SAMPLE, body, "3")
    assert decode_section_binary(SAMPLE, body, (7,)) is None


def test_binary_refuses_an_encoding_it_does_not_know():
    raw = b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n"
    with pytest.raises(UnknownTransferEncoding):
        decode_section_binary(raw, parse_message(raw).body, (1,))


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        (b"aGVsbG8=", b"hello"),
        (b"aGVs\r\nbG8=\r\n", b"hello"),
        (b"aGVsbG8", b"hello"),  # padding missing
        (b"aG!Vs*bG8=", b"hello"),  # RFC 2045 §6.8: characters outside the alphabet are ignored
        (b"aGVsbG8=x", b"hello"),
    ],
)
def test_base64_is_decoded_leniently(encoded, decoded):
    raw = b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded
    assert decode_section_binary(raw, parse_message(raw).body, (1,)) == decoded
