"""IMAP wire syntax for FETCH: strings, ENVELOPE, BODY / BODYSTRUCTURE, and body sections
cut from the raw message with the offsets stored at delivery, never re-parsing it.

RFC 9051 §4.3 (strings), §6.4.5 (FETCH sections), §7.5.2 (FETCH response) and §9 (formal
syntax); RFC 3501 says the same in §4.3, §6.4.5, §7.4.2 and §9. BINARY is RFC 3516.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from apps.mailstore.mime import (
    ADDRESS_FIELDS,
    ENVELOPE_FIELDS,
    decode_transfer,
    is_message,
    split_header,
)

NIL = b"NIL"
# No RFC caps a quoted string; longer ones go as literals, which no client mis-parses.
MAX_QUOTED = 1000
SECTION_TEXTS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"})

_PRINTABLE = re.compile(rb"[\x20-\x7e]*")  # RFC 9051 §9 QUOTED-CHAR, minus controls and tab
_QUOTED_SPECIALS = re.compile(rb'["\\]')  # RFC 9051 §9 "quoted-specials"
_ASTRING_ATOM = re.compile(rb'[^(){ %*"\\\x00-\x1f\x7f-\xff]+')  # RFC 9051 §9 1*ASTRING-CHAR
_PART_NUMBER = re.compile(r"[1-9][0-9]*")  # RFC 9051 §9 "section-part"
_FIELD_NAME = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s()"]+)', re.DOTALL)


# --- strings -------------------------------------------------------------------------------


def imap_string(value: str | bytes | None, *, utf8: bool = False) -> bytes:
    """RFC 9051 §4.3 nstring: NIL for None, else a quoted string, or a literal when the
    value has CR, LF, NUL, other controls or 8-bit octets (RFC 3501 quoted strings are
    7-bit) or is long. `utf8=True` quotes valid UTF-8 too (RFC 9051, RFC 6855 UTF8=ACCEPT)."""
    if value is None:
        return NIL
    data = value.encode("utf-8", "replace") if isinstance(value, str) else value
    if len(data) <= MAX_QUOTED and _quotable(data, utf8):
        return b'"' + _QUOTED_SPECIALS.sub(rb"\\\g<0>", data) + b'"'
    return imap_literal(data)


def _quotable(data: bytes, utf8: bool) -> bool:
    if _PRINTABLE.fullmatch(data):
        return True
    if not utf8:
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text.isprintable()


def imap_literal(data: bytes) -> bytes:
    """RFC 9051 §4.3 literal: {n} CRLF and n octets. A literal carries CHAR8, never NUL,
    so NUL goes out as 0x80, as Dovecot does; BINARY uses `imap_binary` instead."""
    return b"{%d}\r\n" % len(data) + data.replace(b"\x00", b"\x80")


def imap_binary(data: bytes) -> bytes:
    """BINARY[] content (RFC 3516): literal8 ~{n} (RFC 9051 §4.3) if it has NUL, else a
    literal."""
    if b"\x00" in data:
        return b"~{%d}\r\n" % len(data) + data
    return imap_literal(data)


def imap_astring(value: str, *, utf8: bool = False) -> bytes:
    """RFC 9051 §9 astring: a bare atom when every char is an ASTRING-CHAR, else a string."""
    data = value.encode("utf-8", "replace")
    return data if _ASTRING_ATOM.fullmatch(data) else imap_string(data, utf8=utf8)


def imap_list(items: Iterable[bytes]) -> bytes:
    """A parenthesised list, items separated by one space (RFC 9051 §4.4)."""
    return b"(" + b" ".join(items) + b")"


# --- ENVELOPE ------------------------------------------------------------------------------


def render_envelope(envelope: Mapping[str, Any]) -> bytes:
    """RFC 9051 §7.5.2 ENVELOPE, fields in §9 "envelope" order, from mime.build_envelope."""
    return imap_list(_envelope_field(envelope.get(key), key) for key in ENVELOPE_FIELDS)


def _envelope_field(value: Any, key: str) -> bytes:
    return render_addresses(value) if key in ADDRESS_FIELDS else imap_string(value)


def render_addresses(addresses: Sequence[Sequence[str | None]] | None) -> bytes:
    """RFC 9051 §9 env-from etc.: "(" 1*address ")" / nil; addresses are not separated."""
    if not addresses:
        return NIL
    return b"(" + b"".join(imap_list(map(imap_string, address)) for address in addresses) + b")"


# --- BODY and BODYSTRUCTURE ----------------------------------------------------------------


def render_body(body: Mapping[str, Any], extensible: bool) -> bytes:
    """RFC 9051 §9 "body": BODYSTRUCTURE when `extensible`, else BODY (no extension data)."""
    if "parts" in body:
        return _render_multipart(body, extensible)
    fields = [
        imap_string(body["type"]),
        imap_string(body["subtype"]),
        _params(body["params"]),  # §9 "body-fields"
        imap_string(body["id"]),
        imap_string(body["description"]),
        imap_string(body["encoding"]),
        b"%d" % body["size"],
    ]
    if is_message(body) and "body" in body:  # §9 "body-type-msg"
        fields += [
            render_envelope(body["envelope"]),
            render_body(body["body"], extensible),
            b"%d" % body["lines"],
        ]
    elif body["type"] == "text":  # §9 "body-type-text"
        fields.append(b"%d" % body["lines"])
    if extensible:  # §9 "body-ext-1part"
        fields += [imap_string(body["md5"]), *_extension(body)]
    return imap_list(fields)


def _render_multipart(body: Mapping[str, Any], extensible: bool) -> bytes:
    """RFC 9051 §9 "body-type-mpart": 1*body SP subtype [SP body-ext-mpart]."""
    children = b"".join(render_body(part, extensible) for part in body["parts"])
    fields = [children + b" " + imap_string(body["subtype"])]
    if extensible:
        fields += [_params(body["params"]), *_extension(body)]
    return imap_list(fields)


def _extension(body: Mapping[str, Any]) -> list[bytes]:
    """body-fld-dsp SP body-fld-lang SP body-fld-loc (RFC 9051 §9)."""
    disposition = body["disposition"]
    language = body["language"]
    return [
        imap_list([imap_string(disposition[0]), _params(disposition[1])]) if disposition else NIL,
        imap_list(map(imap_string, language)) if language else NIL,
        imap_string(body["location"]),
    ]


def _params(params: Sequence[Sequence[str]]) -> bytes:
    """RFC 9051 §9 "body-fld-param": "(" string SP string *(SP string SP string) ")" / nil."""
    if not params:
        return NIL
    return imap_list(imap_string(item) for pair in params for item in pair)


# --- sections ------------------------------------------------------------------------------


def find_part(body: Mapping[str, Any], part: Sequence[int]) -> Mapping[str, Any] | None:
    """The node for a section-part such as (4, 2, 1), or None if there is no such part.

    RFC 9051 §6.4.5: the parts of a multipart are numbered from 1; a message that is not
    multipart (the top one or a message/rfc822 part's) has only part 1, its body; the
    parts of a message/rfc822 part are those of the message it carries.
    """
    if not part:
        return body
    node = _inside_message(body, part[0])
    for number in part[1:]:
        if node is None:
            return None
        if is_message(node) and "body" in node:
            node = _inside_message(node["body"], number)
        else:
            node = _nth_part(node, number)
    return node


def _inside_message(body: Mapping[str, Any], number: int) -> Mapping[str, Any] | None:
    if "parts" in body:
        return _nth_part(body, number)
    return body if number == 1 else None


def _nth_part(node: Mapping[str, Any], number: int) -> Mapping[str, Any] | None:
    parts = node.get("parts") or ()
    return parts[number - 1] if 1 <= number <= len(parts) else None


def extract_section(raw: bytes, body: Mapping[str, Any], section: str) -> bytes | None:
    """BODY[section] of a message: `section` as written between the brackets, such as
    "", "HEADER", "1.2", "3.MIME", "3.TEXT" or "HEADER.FIELDS (From To)". None if the
    part does not exist (answer NIL); ValueError if `section` is not a section-spec."""
    part, text, fields = parse_section(section)
    return section_bytes(raw, body, part, text, fields)


def parse_section(section: str) -> tuple[tuple[int, ...], str | None, tuple[str, ...]]:
    """RFC 9051 §9 "section-spec" -> (part numbers, text or None, header field names)."""
    spec, _, names = section.partition("(")
    words = spec.strip().upper().split(".") if spec.strip() else []
    part: list[int] = []
    while words and _PART_NUMBER.fullmatch(words[0]):
        part.append(int(words.pop(0)))
    text = ".".join(words) or None
    if text is not None and (text not in SECTION_TEXTS or (text == "MIME" and not part)):
        raise ValueError(f"Invalid section {section!r}")
    if text is not None and text.startswith("HEADER.FIELDS"):
        return tuple(part), text, _field_names(names)
    return tuple(part), text, ()


def _field_names(names: str) -> tuple[str, ...]:
    """header-list names, bare or quoted (as parse_fetch.Section renders them)."""
    found = _FIELD_NAME.findall(names.rstrip().removesuffix(")"))
    return tuple(re.sub(r"\\(.)", r"\1", quoted) if quoted else bare for quoted, bare in found)


def section_bytes(
    raw: bytes,
    body: Mapping[str, Any],
    part: Sequence[int] = (),
    text: str | None = None,
    fields: Sequence[str] = (),
) -> bytes | None:
    """The octets of a section (RFC 9051 §6.4.5), None if the part does not exist.

    HEADER, HEADER.FIELDS[.NOT] and TEXT after a part number apply to a message/rfc822
    part (the message it carries); for any other part they are None.
    """
    message = body
    if part:
        node = find_part(body, part)
        if node is None:
            return None
        if text is None:
            return raw[node["body_start"] : node["end"]]
        if text == "MIME":
            return raw[node["header_start"] : node["body_start"]]
        if not (is_message(node) and "body" in node):
            return None
        message = node["body"]
    header = raw[message["header_start"] : message["body_start"]]
    if text is None:
        return raw[message["header_start"] : message["end"]]
    if text == "HEADER":
        return header
    if text == "TEXT":
        return raw[message["body_start"] : message["end"]]
    if text not in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        raise ValueError(f"Invalid section text {text!r}")
    return header_fields(header, fields, exclude=text == "HEADER.FIELDS.NOT")


def header_fields(header: bytes, names: Iterable[str], *, exclude: bool = False) -> bytes:
    """HEADER.FIELDS / HEADER.FIELDS.NOT: the fields named (or all others), names matched
    case-insensitively, exact bytes kept, then the blank line (RFC 9051 §6.4.5)."""
    wanted = {name.lower() for name in names}
    kept = [
        field.raw if field.raw.endswith(b"\n") else field.raw + b"\r\n"
        for field in split_header(header)
        if (field.name.lower() in wanted) != exclude
    ]
    return b"".join(kept) + b"\r\n"


def slice_partial(data: bytes, origin: int, count: int | None = None) -> bytes:
    """<origin.count> (RFC 9051 §6.4.5): at most `count` octets from `origin`; empty if
    `origin` is past the end."""
    return data[origin:] if count is None else data[origin : origin + count]


def decode_section_binary(raw: bytes, body: Mapping[str, Any], part: Sequence[int]) -> bytes | None:
    """BINARY[part] (RFC 3516, RFC 9051 §6.4.5): the part with its Content-Transfer-
    Encoding undone. None if there is no such part; raises mime.UnknownTransferEncoding
    for an encoding we can't undo (answer NO [UNKNOWN-CTE], RFC 9051 §7.1).

    BINARY[] is the whole message, and multipart and message parts come as they are:
    RFC 2045 §6.4 allows them only identity encodings.
    """
    if not part:
        return raw
    node = find_part(body, part)
    if node is None:
        return None
    content = raw[node["body_start"] : node["end"]]
    if "parts" in node or is_message(node):
        return content
    return decode_transfer(content, node["encoding"])
