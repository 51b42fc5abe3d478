"""ENVELOPE, BODYSTRUCTURE and every BODY[section] of a message with nested multiparts,
an attached message/rfc822, RFC 2231 parameters and 8-bit text, checked against what
Python's email package makes of the same bytes (RFC 9051 §6.4.5, §7.5.2)."""

from __future__ import annotations

import email
import email.header
import email.parser
import email.utils
from email import policy
from email.message import Message
from pathlib import Path

import pytest

from tests.imap.conftest import deliver
from tests.imap.sexp import fetch_items

RAW = (Path(__file__).parent / "data" / "nested.eml").read_bytes()
MODEL = email.message_from_bytes(RAW, policy=policy.compat32)


def _message(part: object) -> Message:
    """`part`, which must be a parsed message rather than a string payload."""
    assert isinstance(part, Message), part
    return part


def _subparts(message: Message) -> list[Message]:
    """The parts of a multipart, or the attached message of a message/rfc822 part."""
    payload = message.get_payload()
    assert isinstance(payload, list), payload
    return [_message(part) for part in payload]


def _params(part: Message, header: str = "content-type") -> list[tuple[str, str]]:
    """The part's parameters of `header`, which must be present."""
    params = part.get_params(header=header)
    assert params is not None, header
    return params


def _leaves(message: Message, path: tuple[int, ...] = ()) -> list[tuple[tuple[int, ...], Message]]:
    """(IMAP part number, part) for every part, in RFC 9051 §6.4.5 numbering."""
    found = []
    if message.is_multipart() and message.get_content_maintype() == "multipart":
        for index, part in enumerate(_subparts(message), 1):
            found.append(((*path, index), part))
            found += _children(part, (*path, index))
    return found


def _children(part: Message, path: tuple[int, ...]) -> list[tuple[tuple[int, ...], Message]]:
    if part.get_content_type() == "message/rfc822":
        inner = _message(part.get_payload(0))
        if inner.is_multipart():
            return _leaves(inner, path)
        return [((*path, 1), inner)]
    if part.get_content_maintype() == "multipart":
        return _leaves(part, path)
    return []


PARTS = _leaves(MODEL)


def _fetch(raw_client, items: str) -> dict:
    lines = raw_client.command(f"UID FETCH 1 ({items})")
    assert lines[-1].startswith(b"t") and b" OK " in lines[-1], lines[-1]
    return fetch_items(lines[0])


@pytest.fixture
def client(imap, alice):
    deliver(alice, RAW)
    raw = imap.raw(alice)
    raw.command("EXAMINE INBOX")
    return raw


def _raw_body(part: Message) -> bytes:
    """The part's body octets as they are in the message."""
    payload = part.get_payload()
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogateescape") if _identity(part) else payload.encode()
    return part.as_bytes()


def _identity(part: Message) -> bool:
    return part.get("content-transfer-encoding", "7bit").lower() in ("7bit", "8bit", "binary")


def _decoded_name(name: bytes | None) -> str:
    if name is None:
        return ""
    return str(email.header.make_header(email.header.decode_header(name.decode())))


def _address_pairs(value) -> list[tuple[str, str]]:
    return [(_decoded_name(a[0]), f"{a[2].decode()}@{a[3].decode()}") for a in value if a[3]]


def test_whole_message_and_size_are_the_stored_octets(client):
    items = _fetch(client, "BODY.PEEK[] RFC822.SIZE")
    assert items[b"BODY[]"] == RAW
    assert items[b"RFC822.SIZE"] == len(RAW)


def test_envelope_matches_the_header_fields(client):
    envelope = _fetch(client, "ENVELOPE")[b"ENVELOPE"]
    date, subject, from_, sender, reply_to, to, cc, bcc, in_reply_to, message_id = envelope
    assert date.decode() == MODEL["Date"]
    assert subject.decode() == MODEL["Subject"].replace("\r\n", "")  # unfolded, not decoded
    parsed = email.message_from_bytes(RAW, policy=policy.default)
    for field, value in (("from", from_), ("sender", sender), ("reply-to", reply_to), ("to", to)):
        expected = [(a.display_name, a.addr_spec) for a in parsed[field].addresses]
        assert _address_pairs(value) == expected, field
    # RFC 9051 §7.5.2: a group is a start marker (NIL NIL name NIL), members, an end marker.
    group = parsed["cc"].groups[0]
    assert cc[0] == [None, None, group.display_name.encode(), None]
    assert _address_pairs(cc[1:-1]) == [(a.display_name, a.addr_spec) for a in group.addresses]
    assert cc[-1] == [None, None, None, None]
    assert bcc is None
    assert in_reply_to.decode() == MODEL["In-Reply-To"]
    assert message_id.decode() == MODEL["Message-ID"]


def _check_node(node: list, part: Message, path: tuple[int, ...]) -> None:
    if part.get_content_maintype() == "multipart":
        children = [n for n in node if isinstance(n, list) and n and isinstance(n[0], list | bytes)]
        subtype_index = next(i for i, n in enumerate(node) if isinstance(n, bytes))
        assert node[subtype_index].decode().lower() == part.get_content_subtype()
        params = node[subtype_index + 1]
        assert (
            dict(zip(params[::2], params[1::2], strict=True))[b"boundary"].decode()
            == part.get_boundary()
        )
        for index, (child, sub) in enumerate(
            zip(node[:subtype_index], _subparts(part), strict=True), 1
        ):
            _check_node(child, sub, (*path, index))
        assert len(children) >= len(_subparts(part))
        return
    kind, subtype, params, cid, description, encoding, size = node[:7]
    assert f"{kind.decode()}/{subtype.decode()}".lower() == part.get_content_type(), path
    expected = {k.lower(): email.utils.collapse_rfc2231_value(v) for k, v in _params(part)[1:]}
    got = (
        {}
        if params is None
        else {
            k.decode().lower(): v.decode() for k, v in zip(params[::2], params[1::2], strict=True)
        }
    )
    expected.setdefault("charset", "us-ascii") if kind.lower() == b"text" else None
    assert got == expected, path
    assert (cid and cid.decode()) == part.get("Content-ID"), path
    assert (description and description.decode()) == part.get("Content-Description"), path
    assert encoding.decode().lower() == part.get("Content-Transfer-Encoding", "7bit").lower()
    body = _raw_body(part) if part.get_content_maintype() != "message" else None
    if part.get_content_type() == "message/rfc822":
        inner_envelope, inner_body, _lines = node[7:10]
        inner = _message(part.get_payload(0))
        assert inner_envelope[1].decode() == inner["Subject"]
        assert inner_envelope[9].decode() == inner["Message-ID"]
        _check_node(inner_body, inner, path)
        extension = node[10:]
    elif kind.lower() == b"text":
        assert body is not None and node[7] == body.count(b"\n"), path
        extension = node[8:]
    else:
        extension = node[7:]
    assert body is None or size == len(body), path
    md5, disposition, language, location = extension[:4]
    assert (md5 and md5.decode()) == part.get("Content-MD5")
    if part.get("Content-Disposition"):
        assert disposition[0].decode().lower() == part.get_content_disposition()
        got_params = (
            dict(zip(disposition[1][::2], disposition[1][1::2], strict=True))
            if disposition[1]
            else {}
        )
        want = {
            k.lower(): email.utils.collapse_rfc2231_value(v)
            for k, v in _params(part, header="content-disposition")[1:]
        }
        assert {k.decode().lower(): v.decode() for k, v in got_params.items()} == want
    else:
        assert disposition is None
    if part.get("Content-Language"):
        assert [x.decode() for x in language] == [
            t.strip() for t in part["Content-Language"].split(",")
        ]
    assert (location and location.decode()) == part.get("Content-Location")


def test_bodystructure_matches_the_mime_tree(client):
    structure = _fetch(client, "BODYSTRUCTURE")[b"BODYSTRUCTURE"]
    _check_node(structure, MODEL, ())


def test_body_is_bodystructure_without_extension_data(client):
    items = _fetch(client, "BODY BODYSTRUCTURE")
    body, structure = items[b"BODY"], items[b"BODYSTRUCTURE"]
    # The top multipart: same children, subtype, and no parameters after it.
    assert body[-1] == structure[len(body) - 1] == b"mixed"
    assert len(structure) > len(body)


@pytest.mark.parametrize("path", [p for p, _ in PARTS], ids=lambda p: ".".join(map(str, p)))
def test_every_part_section_matches_the_email_package(client, path):
    part = dict(PARTS)[path]
    number = ".".join(map(str, path))
    items = _fetch(client, f"BODY.PEEK[{number}] BODY.PEEK[{number}.MIME] BINARY.PEEK[{number}]")
    body, mime = items[f"BODY[{number}]".encode()], items[f"BODY[{number}.MIME]".encode()]
    # The email package reads the part's MIME header and body the same as in the whole.
    assert email.message_from_bytes(mime + body, policy=policy.compat32).as_bytes() == (
        part.as_bytes()
    )
    header = email.parser.BytesHeaderParser(policy=policy.compat32).parsebytes(mime)
    assert header.items() == part.items()
    if not part.is_multipart():
        assert body == _raw_body(part)
        assert items[f"BINARY[{number}]".encode()] == part.get_payload(decode=True)


def test_header_text_and_header_fields_sections(client):
    items = _fetch(
        client,
        "BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[HEADER.FIELDS (Subject FROM)] "
        "BODY.PEEK[HEADER.FIELDS.NOT (Subject From Received)]",
    )
    header = items[b"BODY[HEADER]"]
    assert RAW.startswith(header) and header.endswith(b"\r\n\r\n")
    assert items[b"BODY[TEXT]"] == RAW[len(header) :]
    fields = email.parser.BytesHeaderParser(policy=policy.compat32).parsebytes(
        items[b"BODY[HEADER.FIELDS (Subject FROM)]"]
    )
    assert fields.items() == [(k, v) for k, v in MODEL.items() if k.lower() in ("subject", "from")]
    rest = email.parser.BytesHeaderParser(policy=policy.compat32).parsebytes(
        items[b"BODY[HEADER.FIELDS.NOT (Subject From Received)]"]
    )
    assert rest.items() == [
        (k, v) for k, v in MODEL.items() if k.lower() not in ("subject", "from")
    ]


def test_sections_of_the_attached_message(client):
    """RFC 9051 §6.4.5: 2.HEADER and 2.TEXT are the attached message's own."""
    inner = _message(_subparts(MODEL)[1].get_payload(0))
    items = _fetch(client, "BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1] BINARY.PEEK[2.2]")
    header = email.parser.BytesHeaderParser(policy=policy.compat32).parsebytes(
        items[b"BODY[2.HEADER]"]
    )
    assert header.items() == inner.items()
    assert b"Inner text." in items[b"BODY[2.TEXT]"]
    assert items[b"BODY[2.1]"] == b"Inner text."
    assert items[b"BINARY[2.2]"] == bytes(range(10))


@pytest.mark.parametrize(
    "section, expected",
    [
        ("1.1", b"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln \xe2\x80\x94 8-bit text.\r\nSecond line."),
        ("3", b"JVBERi0xLjQKJcOkw7zDtsOfCg=="),
    ],
)
def test_partial_fetch_returns_the_origin_and_the_octets(client, section, expected):
    items = _fetch(client, f"BODY.PEEK[{section}]<2.5>")
    assert items[f"BODY[{section}]<2>".encode()] == expected[2:7]


def test_binary_size_is_the_decoded_length(client):
    items = _fetch(client, "BINARY.SIZE[3] BINARY.SIZE[1.2]")
    assert items[b"BINARY.SIZE[3]"] == len(_subparts(MODEL)[2].get_payload(decode=True))
    assert items[b"BINARY.SIZE[1.2]"] == len(
        _subparts(_subparts(MODEL)[0])[1].get_payload(decode=True)
    )


def test_a_missing_part_is_nil(client):
    items = _fetch(client, "BODY.PEEK[9] BINARY.PEEK[9]")
    assert items[b"BODY[9]"] is None and items[b"BINARY[9]"] is None


def test_the_attached_message_counts_its_own_octets_and_lines(client):
    items = _fetch(client, "BODYSTRUCTURE BODY.PEEK[2]")
    attached = items[b"BODYSTRUCTURE"][1]
    assert attached[6] == len(items[b"BODY[2]"])  # body-fld-octets
    assert attached[9] == items[b"BODY[2]"].count(b"\n")  # body-fld-lines
