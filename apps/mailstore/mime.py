"""Parse a message once, at delivery, into what IMAP FETCH, SEARCH/SORT/THREAD and the
webmail need later: ENVELOPE, the MIME tree with byte offsets, sort keys and body text.

`parse_message` never raises. Broken input degrades the way Dovecot degrades it: a part
whose structure can't be trusted becomes text/plain, a header without a blank line is
all header. Sizes and offsets are octets of the raw message as stored (no CRLF rewriting).

`ParsedMessage.body` has one JSON-ready node per MIME part:

    {"type": "text", "subtype": "plain", "params": [["charset", "utf-8"]],
     "id": None, "description": None, "encoding": "7bit", "md5": None,
     "disposition": ["attachment", [["filename", "a.txt"]]] or None,
     "language": ["en"] or None, "location": None, "filename": "a.txt" or None,
     "header_start": 0, "body_start": 312, "end": 1546, "size": 1234, "lines": 40,
     "parts": [node, ...],                    # multipart/* only
     "envelope": {...}, "body": node}         # message/rfc822 and message/global only

`size` and `lines` count the body, raw[body_start:end]. `ParsedMessage.envelope` (and a
message part's "envelope") has the keys of ENVELOPE_FIELDS; see `build_envelope`.
"""

from __future__ import annotations

import binascii
import email.policy
import email.utils
import html.parser
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from typing import Any

JSON = dict[str, Any]
Address = list[str | None]  # [name, adl, mailbox, host] as in RFC 9051 §9 "address"

# Dovecot's defaults for message_parser: deeper or further parts are not split any more.
MAX_DEPTH = 100
MAX_PARTS = 10_000
TEXT_LIMIT = 1_000_000  # characters of body text kept for the full-text index
# Octets of a Content-Type / Content-Disposition given to the email package, whose
# parameter splitting is quadratic in the number of ";" inside quotes.
MAX_PARAMETERS = 16_384

# Dovecot's placeholders, so a host of NIL only ever means group syntax (RFC 9051 §7.5.2).
MISSING_MAILBOX = "MISSING_MAILBOX"
MISSING_DOMAIN = "MISSING_DOMAIN"

MESSAGE_SUBTYPES = frozenset({"rfc822", "global"})  # RFC 9051 §9 "media-message"
IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})  # RFC 2045 §6.2
ADDRESS_FIELDS = ("from", "sender", "reply_to", "to", "cc", "bcc")
# RFC 9051 §9 "envelope", in wire order
ENVELOPE_FIELDS = ("date", "subject", *ADDRESS_FIELDS, "in_reply_to", "message_id")

_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")  # RFC 2045 §5.1 "token"
_FIELD = re.compile(rb"([^\s:]+)[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)\n?")  # RFC 5322 §2.2
_UNREADABLE = re.compile(rb"[^\n]*(?:\n[ \t][^\n]*)*\n?")  # a bad line and its continuations
_FOLD = re.compile(rb"\r?\n(?=[ \t])")  # RFC 5322 §2.2.3 unfolding
_BLANK_LINE = re.compile(rb"\n\r?\n")
_PADDING = re.compile(rb"[ \t]*(?:\r?\n|$)")  # RFC 2046 §5.1.1 transport-padding CRLF
_MSG_ID = re.compile(r"<[^<>\s]+>")  # RFC 5322 §3.6.4 msg-id
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
# White space before a line break or the end; the look-behind makes a match start only
# where a run starts, so a long run that does not end a line costs linear time.
_TRAILING_SPACE = re.compile(rb"(?<![ \t])[ \t]+(?=\r?\n|\Z)")
_RFC2231_PARAM = re.compile(r';\s*[^\s;=]+\*\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^;]*)')


class UnknownTransferEncoding(ValueError):
    """A Content-Transfer-Encoding we can't undo (IMAP answers NO [UNKNOWN-CTE])."""


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Everything stored at delivery; `envelope` and `body` are JSON-ready."""

    envelope: JSON
    body: JSON
    header_size: int
    subject: str
    base_subject: str
    from_addr: str
    from_name: str
    to_addr: str
    to_name: str
    cc_addr: str
    cc_name: str
    sent_date: datetime | None
    message_id: str
    in_reply_to: str
    references: tuple[str, ...]
    text: str
    header: bytes  # the top-level header block as written, for the full-text index


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field: name as written, unfolded raw value, and its exact bytes."""

    name: str
    value: bytes
    raw: bytes


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse `raw` (the message as stored) once; never raises."""
    first, body = _entity(_Context(raw), 0, len(raw), "text/plain", 0)
    envelope = build_envelope(first)
    subject = decode_words(envelope["subject"] or "")
    from_addr, from_name = first_mailbox(envelope["from"])
    to_addr, to_name = first_mailbox(envelope["to"])
    cc_addr, cc_name = first_mailbox(envelope["cc"])
    return ParsedMessage(
        envelope=envelope,
        body=body,
        header_size=body["body_start"],
        subject=subject,
        base_subject=base_subject(subject),
        from_addr=from_addr,
        from_name=from_name,
        to_addr=to_addr,
        to_name=to_name,
        cc_addr=cc_addr,
        cc_name=cc_name,
        sent_date=parse_date(envelope["date"]),
        message_id=_first_msg_id(envelope["message_id"]),
        in_reply_to=_first_msg_id(envelope["in_reply_to"]),
        references=tuple(_MSG_ID.findall(_text(first.get("references", b"")))),
        text=body_text(raw, body),
        header=raw[: body["body_start"]],
    )


# --- the MIME tree -----------------------------------------------------------------------


@dataclass
class _Context:
    raw: bytes
    parts: int = 0


def _entity(
    ctx: _Context, start: int, end: int, default_type: str, depth: int
) -> tuple[dict[str, bytes], JSON]:
    """A message or body part in raw[start:end]: its first header values and its node."""
    body_start = header_end(ctx.raw, start, end)
    first = first_values(split_header(ctx.raw[start:body_start]))
    node, boundary = _describe(first, default_type)
    node.update(
        header_start=start,
        body_start=body_start,
        end=end,
        size=end - body_start,
        lines=ctx.raw.count(b"\n", body_start, end),
    )
    ctx.parts += 1
    if node["type"] == "multipart":
        _add_parts(ctx, node, boundary, depth)
    elif is_message(node):
        _add_message(ctx, node, depth)
    return first, node


def _add_parts(ctx: _Context, node: JSON, boundary: bytes | None, depth: int) -> None:
    if not boundary or depth >= MAX_DEPTH or ctx.parts >= MAX_PARTS:
        _as_plain_text(node)  # no usable boundary: Dovecot shows the body as text/plain
        return
    default = "message/rfc822" if node["subtype"] == "digest" else "text/plain"  # RFC 2046 §5.1.5
    ranges = split_multipart(ctx.raw, node["body_start"], node["end"], boundary)
    parts = [_entity(ctx, start, end, default, depth + 1)[1] for start, end in ranges]
    # RFC 9051 §9 "body-type-mpart" needs one body at least; Dovecot shows an empty one.
    node["parts"] = parts or [_empty_part(node["end"])]


def _add_message(ctx: _Context, node: JSON, depth: int) -> None:
    if depth >= MAX_DEPTH or ctx.parts >= MAX_PARTS:
        _as_plain_text(node)
        return
    first, inner = _entity(ctx, node["body_start"], node["end"], "text/plain", depth + 1)
    node["envelope"] = build_envelope(first)
    node["body"] = inner


def _as_plain_text(node: JSON) -> None:
    node.update(type="text", subtype="plain", params=[["charset", "us-ascii"]])


def _empty_part(at: int) -> JSON:
    node, _ = _describe({}, "text/plain")
    node.update(header_start=at, body_start=at, end=at, size=0, lines=0)
    return node


def is_message(node: Mapping[str, Any]) -> bool:
    """True for message/rfc822 and message/global, whose body is a whole message."""
    return node["type"] == "message" and node["subtype"] in MESSAGE_SUBTYPES


def header_end(raw: bytes, start: int, end: int) -> int:
    """Offset just past the empty line ending the header at `start` (RFC 5322 §2.1), or
    `end` when there is none: then, as in Dovecot, it is all header and no body."""
    for blank in (b"\n", b"\r\n"):
        if raw.startswith(blank, start, end):
            return start + len(blank)
    found = _BLANK_LINE.search(raw, start, end)
    return found.end() if found else end


def split_multipart(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """The (start, end) of each body part of a multipart body in raw[start:end].

    RFC 2046 §5.1.1: a delimiter is "--" boundary at the start of a line, then optional
    "--" (the close delimiter), transport padding and the line break; the line break
    before it belongs to the delimiter. Preamble and epilogue belong to no part.
    """
    delimiter = b"--" + boundary
    ranges: list[tuple[int, int]] = []
    part_start: int | None = None
    pos = start
    while len(ranges) < MAX_PARTS and (hit := raw.find(delimiter, pos, end)) >= 0:
        pos = hit + 1
        after = hit + len(delimiter)
        closing = raw.startswith(b"--", after, end)
        padding = _PADDING.match(raw, after + 2 * closing, end)
        if (hit > start and raw[hit - 1] != 0x0A) or padding is None:
            continue
        if part_start is not None:
            ranges.append((part_start, max(part_start, _line_break_start(raw, hit, start))))
        if closing:
            return ranges
        part_start = pos = padding.end()
    if part_start is not None:
        ranges.append((part_start, end))  # no close delimiter: the last part runs to the end
    return ranges


def _line_break_start(raw: bytes, line: int, floor: int) -> int:
    if line - 1 < floor:
        return line
    return line - 2 if line - 2 >= floor and raw[line - 2] == 0x0D else line - 1


# --- header fields -----------------------------------------------------------------------


def split_header(block: bytes) -> list[HeaderField]:
    """The fields of a header block, up to its empty line. A line that is neither a field
    nor a continuation is skipped together with its continuations."""
    fields: list[HeaderField] = []
    pos = 0
    while pos < len(block) and not block.startswith((b"\n", b"\r\n"), pos):
        found = _FIELD.match(block, pos)
        if found is None:
            skipped = _UNREADABLE.match(block, pos)
            pos = max(pos + 1, skipped.end() if skipped else 0)
            continue
        name = found.group(1).decode("utf-8", "replace")
        value = _FOLD.sub(b"", found.group(2)).strip(b" \t\r")
        fields.append(HeaderField(name, value, found.group(0)))
        pos = found.end()
    return fields


def first_values(fields: Sequence[HeaderField]) -> dict[str, bytes]:
    """Lower-cased field name -> value of its first occurrence."""
    values: dict[str, bytes] = {}
    for field in fields:
        values.setdefault(field.name.lower(), field.value)
    return values


def _describe(first: Mapping[str, bytes], default_type: str) -> tuple[JSON, bytes | None]:
    """The MIME fields of a part (RFC 2045, RFC 2183, RFC 3282, RFC 2557) and its boundary."""
    maintype, subtype, params = _content_type(first.get("content-type"), default_type)
    if maintype == "text" and "charset" not in (key for key, _ in params):
        params.append(("charset", "us-ascii"))  # RFC 2045 §5.2 default, as Dovecot shows it
    boundary = dict(params).get("boundary")
    disposition = _disposition(first.get("content-disposition"))
    encoding = _text(first.get("content-transfer-encoding", b"")).strip().lower()
    node: JSON = {
        "type": maintype,
        "subtype": subtype,
        "params": [[key, _clean(value)] for key, value in params],
        "id": _optional_text(first.get("content-id")),
        "description": _optional_text(first.get("content-description")),
        "encoding": encoding if _TOKEN.fullmatch(encoding) else "7bit",  # RFC 2045 §6.1
        "md5": _optional_text(first.get("content-md5")),
        "disposition": disposition,
        "language": _language(first.get("content-language")),
        "location": _optional_text(first.get("content-location")),
    }
    node["filename"] = _filename(node)
    return node, _raw_bytes(boundary) if boundary else None


def _content_type(value: bytes | None, default_type: str) -> tuple[str, str, list[tuple[str, str]]]:
    if value is None:
        maintype, _, subtype = default_type.partition("/")
        return maintype, subtype, []
    head, params = _parameters(value, "content-type")
    maintype, _, subtype = head.strip().lower().partition("/")
    if not (_TOKEN.fullmatch(maintype) and _TOKEN.fullmatch(subtype)):
        return "text", "plain", []  # RFC 2045 §5.2: a broken Content-Type means the default
    return maintype, subtype, params


def _disposition(value: bytes | None) -> list[Any] | None:
    """RFC 2183 disposition as [type, [[key, value], ...]], or None."""
    if value is None:
        return None
    head, params = _parameters(value, "content-disposition")
    kind = head.strip().lower()
    if not _TOKEN.fullmatch(kind):
        return None
    return [kind, [[key, _clean(val)] for key, val in params]]


def _parameters(value: bytes, header: str) -> tuple[str, list[tuple[str, str]]]:
    """The value before the first ";" and the parameters, via the email package.

    RFC 2231 continuations are joined and charset-encoded values decoded to Unicode, the
    way Dovecot 2.3.x presents them. Keys are lower-cased; the first of a repeated key wins.
    Values keep undecodable 8-bit octets as surrogates until `_clean`.
    """
    text = value[:MAX_PARAMETERS].decode("ascii", "surrogateescape")
    try:
        items = _email_params(text, header)
    except (TypeError, ValueError):  # e.g. "name*0*=a; name*=b": mixed RFC 2231 forms
        items = _email_params(_RFC2231_PARAM.sub("", text), header)
    params: dict[str, str] = {}
    for key, raw_value in items[1:]:
        key = _clean(key.strip().lower())
        if key and key not in params:
            params[key] = _collapse(raw_value)
    return items[0][0], list(params.items())


def _email_params(text: str, header: str) -> list[tuple[str, Any]]:
    message = Message()
    message[header] = text
    return message.get_params(header=header) or [("", "")]


def _collapse(value: str | tuple[str | None, str | None, str]) -> str:
    if isinstance(value, str):
        return value
    try:
        return email.utils.collapse_rfc2231_value(value)
    except (LookupError, ValueError):  # "idna" refuses errors="replace"; NUL in the name
        return value[2]


def _language(value: bytes | None) -> list[str] | None:
    """RFC 3282 Content-Language: language tags, comments dropped."""
    text = re.sub(r"\([^()]*\)", " ", _text(value or b""))
    tags = [tag for tag in re.split(r"[\s,]+", text) if tag]
    return tags or None


def _filename(node: Mapping[str, Any]) -> str | None:
    """The attachment's name for the webmail, with RFC 2047 words decoded as clients do."""
    disposition = dict(node["disposition"][1]) if node["disposition"] else {}
    name = disposition.get("filename") or dict(node["params"]).get("name")
    return decode_words(name) if name else None


# --- ENVELOPE (RFC 9051 §7.5.2) ----------------------------------------------------------


def build_envelope(first: Mapping[str, bytes]) -> JSON:
    """ENVELOPE fields as JSON: raw (unfolded, not MIME-decoded) text, or None if absent;
    address fields as lists of [name, adl, mailbox, host], or None."""

    def text(name: str) -> str | None:
        return _text(first[name]) if name in first else None

    def addresses(name: str) -> list[Address] | None:
        if name not in first:
            return None
        return parse_addresses(_text(first[name])) or None

    sender = addresses("from")
    return {
        "date": text("date"),
        "subject": text("subject"),
        "from": sender,
        # RFC 9051 §7.5.2: absent or empty Sender and Reply-To default to From.
        "sender": addresses("sender") or sender,
        "reply_to": addresses("reply-to") or sender,
        "to": addresses("to"),
        "cc": addresses("cc"),
        "bcc": addresses("bcc"),
        "in_reply_to": text("in-reply-to"),
        "message_id": text("message-id"),
    }


def first_mailbox(addresses: Sequence[Address] | None) -> tuple[str, str]:
    """(lower-cased addr-spec, decoded addr-name) of the first address, for SORT (RFC 5256
    §3: the addr-mailbox of the first address) and SORT=DISPLAY (RFC 5957 §3: its
    addr-name, else the addr-spec); ("", "") if there is none.

    The first address is the first of the IMAP address list (RFC 9051 §7.5.2): when the
    field starts with a group, that is the group's start marker, whose addr-mailbox is
    the group name and which has no host, so the group name is the key (as Dovecot and
    imaptest's sort tests have it), not the first member's address."""
    if not addresses:
        return "", ""
    name, _adl, mailbox, host = addresses[0]
    if host is None:
        return (mailbox or "").lower(), ""
    spec = f"{mailbox}@{host}" if host != MISSING_DOMAIN else mailbox or ""
    return spec.lower(), decode_words(name) if name else ""


def addresses_text(addresses: Sequence[Address] | None) -> str:
    """An address list as what it means, for SEARCH FROM/TO/CC/BCC (RFC 9051 §6.4.4):
    "name <mailbox@host>" or "mailbox@host" per mailbox, display names decoded (RFC 2047),
    comments, quoting and folding gone; a group is its name, ":", its members and ";"."""
    text, separator = "", ""
    for name, _adl, mailbox, host in addresses or ():
        if host is None and mailbox is not None:  # group start (RFC 9051 §7.5.2)
            text, separator = f"{text}{separator}{mailbox}: ", ""
        elif host is None:  # group end
            text, separator = f"{text};", ", "
        else:
            real = [p for p in (mailbox, host) if p and p not in (MISSING_MAILBOX, MISSING_DOMAIN)]
            spec = "@".join(real)
            shown = f"{decode_words(name)} <{spec}>" if name else spec
            text, separator = f"{text}{separator}{shown}", ", "
    return text.strip()


_ADDRESS_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<quoted>"(?:[^"\\]|\\.)*"?)
      | (?P<literal>\[(?:[^\[\]\\]|\\.)*\]?)
      | (?P<special>[<>@,;:.])
      | (?P<atom>[^\s"()<>@,;:.\[\]\\]+)
      | (?P<junk>.)""",
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "word", "literal", "comment", "junk" or the special character itself
    text: str  # quoted strings and comments without their delimiters and escapes
    spaced: bool  # white space or a comment came before it


def parse_addresses(value: str) -> list[Address]:
    """RFC 5322 §3.4 address-list (with §4.4 obsolete routes), leniently, as IMAP wants
    it: names raw but unquoted, group syntax as start and end markers (RFC 9051 §7.5.2)."""
    return _AddressParser(_address_tokens(value)).address_list()


def _address_tokens(value: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos, spaced = 0, False
    while pos < len(value):
        if value[pos] == "(":
            pos, comment = _comment(value, pos)
            tokens.append(_Token("comment", comment, spaced))
            spaced = True
            continue
        found = _ADDRESS_TOKEN.match(value, pos)
        assert found is not None and found.lastgroup is not None  # "junk" matches any char
        pos, kind, text = found.end(), found.lastgroup, found.group()
        if kind == "space":
            spaced = True
            continue
        if kind == "quoted":
            kind, text = "word", _unquote(text[1:-1] if text.endswith('"') else text[1:])
        elif kind == "atom":
            kind = "word"
        elif kind == "special":
            kind = text
        tokens.append(_Token(kind, text, spaced))
        spaced = False
    return tokens


def _comment(value: str, pos: int) -> tuple[int, str]:
    """RFC 5322 §3.2.2 comment at value[pos] == "(", nested; returns (end, inner text)."""
    depth, start = 0, pos + 1
    while pos < len(value):
        char = value[pos]
        if char == "\\":
            pos += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return pos + 1, " ".join(_unquote(value[start:pos]).split())
        pos += 1
    return pos, " ".join(_unquote(value[start:]).split())


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text, flags=re.DOTALL)


class _AddressParser:
    """Recursive descent over address tokens; never fails, only skips what it can't read."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.comment: str | None = None

    def peek(self) -> str:
        """Kind of the next token ("" at the end); comments are remembered, not returned."""
        while self.pos < len(self.tokens) and self.tokens[self.pos].kind == "comment":
            self.comment = self.tokens[self.pos].text or self.comment
            self.pos += 1
        return self.tokens[self.pos].kind if self.pos < len(self.tokens) else ""

    def take(self) -> _Token:
        self.peek()
        self.pos += 1
        return self.tokens[self.pos - 1]

    def address_list(self) -> list[Address]:
        found: list[Address] = []
        while self.peek():
            start = self.pos
            if self.peek() not in (",", ";", ">"):
                found.extend(self.address())
            if self.pos == start:
                self.take()  # something no rule wants: skip it
        return found

    def address(self) -> list[Address]:
        words = self.words()
        if self.peek() == ":":
            return self.group(words)
        mailbox = self.mailbox(words)
        return [mailbox] if mailbox else []

    def group(self, words: list[_Token]) -> list[Address]:
        """RFC 5322 §3.4 group: display-name ":" [group-list] ";"."""
        self.take()
        self.comment = None
        found: list[Address] = [[None, None, _phrase(words), None]]
        while self.peek() not in ("", ";"):
            start = self.pos
            if self.peek() not in (",", ":", ">"):
                mailbox = self.mailbox(self.words())
                found.extend([mailbox] if mailbox else [])
            if self.pos == start:
                self.take()
        if self.peek() == ";":
            self.take()
        found.append([None, None, None, None])
        return found

    def mailbox(self, words: list[_Token]) -> Address | None:
        """name-addr or addr-spec; `words` were read before knowing which (RFC 5322 §3.4)."""
        adl = None
        if self.peek() == "<":
            self.take()
            adl, local, domain = self.angle_addr()
            name = _phrase(words) or None
        else:
            local, domain = _joined(words), None
            if self.peek() == "@":
                self.take()
                domain = self.domain()
            name = None
        self.peek()  # take in a trailing comment
        # Dovecot's habit: with no display name, a comment stands in for it.
        name, self.comment = name or self.comment, None
        if not local and not domain:
            return None
        return [name, adl, local or MISSING_MAILBOX, domain or MISSING_DOMAIN]

    def angle_addr(self) -> tuple[str | None, str, str | None]:
        """After "<": [obs-route] addr-spec ">" (RFC 5322 §3.4, §4.4)."""
        route = []
        while self.peek() in ("@", ","):
            if self.take().kind == "@":
                route.append("@" + self.domain())
        if route and self.peek() == ":":
            self.take()
        local, domain = _joined(self.words()), None
        if self.peek() == "@":
            self.take()
            domain = self.domain()
        while self.peek() not in ("", ">", ",", ";"):
            self.take()
        if self.peek() == ">":
            self.take()
        return ",".join(route) or None, local, domain

    def words(self) -> list[_Token]:
        """A phrase or local-part: words and dots (RFC 5322 §3.2.5, §4.1 obs-phrase, §4.4)."""
        found = []
        while self.peek() in ("word", "."):
            found.append(self.take())
        return found

    def domain(self) -> str:
        found = []
        while self.peek() in ("word", ".", "literal"):
            found.append(self.take())
        return _joined(found)


def _phrase(words: Sequence[_Token]) -> str:
    """The display name as written, quotes removed, runs of white space made one space."""
    pieces = [
        (" " if word.spaced and index else "") + word.text for index, word in enumerate(words)
    ]
    return "".join(pieces)


def _joined(words: Sequence[_Token]) -> str:
    return "".join(word.text for word in words)


# --- SEARCH, SORT and THREAD keys -----------------------------------------------------------


def decode_words(value: str) -> str:
    """`value` with RFC 2047 encoded-words decoded; unknown charsets are left as is."""
    if "=?" not in value:
        return value
    try:
        decoded = str(email.policy.default.header_factory("x-decoded", value))
    except Exception:  # the email package's header parser is not hardened against hostile input
        return value
    return _clean(decoded)


# RFC 5256 §2.1 ABNF. Work goes by offsets so hostile subjects ("[a]" or "(fwd)" repeated
# a million times) stay linear.
_SUBJ_BLOBS = re.compile(r"(?:\[[^\[\]]*\][ ]?)*")  # *subj-blob (white space is one space)
_SUBJ_REFWD = re.compile(r"(?:re|fwd?)[ ]?(?:\[[^\[\]]*\][ ]?)?:", re.IGNORECASE)


def base_subject(subject: str) -> str:
    """RFC 5256 §2.1 base subject of an already decoded subject (step 1 decodes)."""
    text = " ".join(subject.split())  # step 1: tabs, continuations, runs of spaces
    start, end = 0, len(text)
    while True:
        end = _before_trailers(text, start, end)  # step 2
        start = _after_leaders(text, start, end)  # steps 3 to 5
        # Step 6: "[fwd: ...]" is unwrapped, and it all starts again from step 2.
        if end - start < 6 or text[start : start + 5].lower() != "[fwd:" or text[end - 1] != "]":
            return text[start:end]
        start, end = start + 5, end - 1


def _before_trailers(text: str, start: int, end: int) -> int:
    """Step 2: drop trailing subj-trailer ("(fwd)" / WSP) repeatedly."""
    while end > start:
        if text[end - 1] == " ":
            end -= 1
        elif end - start >= 5 and text[end - 5 : end].lower() == "(fwd)":
            end -= 5
        else:
            break
    return end


def _after_leaders(text: str, start: int, end: int) -> int:
    """Steps 3 to 5: drop subj-leader (*subj-blob subj-refwd / WSP), and a leading
    subj-blob when something is left after it, until neither applies."""
    while start < end:
        if text[start] == " ":
            start += 1
            continue
        run = _SUBJ_BLOBS.match(text, start, end)
        blobs = run.end() if run else start
        refwd = _SUBJ_REFWD.match(text, blobs, end)
        if refwd:
            start = refwd.end()
        elif blobs == end and blobs > start:  # only blobs left: keep the last one
            last = text.rfind("[", start, end)
            if last == start:
                break
            start = last
        elif blobs > start:
            start = blobs
        else:
            break
    return start


def parse_date(value: str | None) -> datetime | None:
    """RFC 5322 §3.3 Date as an aware datetime (-0000 taken as UTC), None if unreadable."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _first_msg_id(value: str | None) -> str:
    found = _MSG_ID.search(value or "")
    return found.group() if found else ""


# --- body text for the full-text index ------------------------------------------------------


def body_text(raw: bytes, body: Mapping[str, Any]) -> str:
    """Decoded text of the text/* parts (HTML reduced to its text), at most TEXT_LIMIT chars."""
    chunks: list[str] = []
    size = 0
    for node in _text_parts(body):
        # Decoding never needs more than a few octets per character kept.
        end = min(node["end"], node["body_start"] + 4 * TEXT_LIMIT)
        try:
            data = decode_transfer(raw[node["body_start"] : end], node["encoding"])
        except UnknownTransferEncoding:
            data = raw[node["body_start"] : end]
        text = decode_charset(data, dict(node["params"]).get("charset"))
        chunks.append(html_text(text) if node["subtype"] == "html" else text)
        size += len(chunks[-1])
        if size >= TEXT_LIMIT:
            break
    return "\n".join(chunks)[:TEXT_LIMIT].replace("\x00", "\ufffd")


def _text_parts(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    stack = [node]
    while stack:
        node = stack.pop()
        if "parts" in node:
            stack.extend(reversed(node["parts"]))
        elif "body" in node:
            stack.append(node["body"])
        elif node["type"] == "text":
            yield node


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """Undo a Content-Transfer-Encoding (RFC 2045 §6); raises UnknownTransferEncoding."""
    encoding = encoding.lower()
    if encoding in IDENTITY_ENCODINGS:
        return data
    if encoding == "base64":
        # RFC 2045 §6.8: characters outside the alphabet are ignored, "=" ends the data,
        # and a lone last sextet carries no whole octet.
        clean = _NOT_BASE64.sub(b"", data.partition(b"=")[0])
        clean = clean[: len(clean) - (len(clean) % 4 == 1)]
        return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))
    if encoding == "quoted-printable":
        # RFC 2045 §6.7 rule 3: white space at the end of a line was added in transport
        # and "must be deleted" (so "= " before a line break is a soft line break too);
        # binascii.a2b_qp undoes =XX and soft line breaks but keeps that white space.
        return binascii.a2b_qp(_TRAILING_SPACE.sub(b"", data))
    raise UnknownTransferEncoding(encoding)


def decode_charset(data: bytes, charset: str | None) -> str:
    """`data` in `charset`, falling back to UTF-8 for unknown or unusable charsets. US-ASCII
    is read as UTF-8 too: undeclared 8-bit text is UTF-8 far more often than not."""
    if not charset or charset.lower() in ("us-ascii", "ascii"):
        charset = "utf-8"
    try:
        return data.decode(charset, "replace")
    except (LookupError, ValueError):  # unknown, can't "replace" (idna), NUL in the name
        return data.decode("utf-8", "replace")


class _HtmlText(html.parser.HTMLParser):
    """Text content of HTML: script and style dropped, block elements on their own lines."""

    BLOCKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "blockquote", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.chunks.append(data)


def html_text(markup: str) -> str:
    """Crude text of an HTML document, good enough for a search index."""
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    text = re.sub(r"[^\S\n]+", " ", "".join(parser.chunks))
    return re.sub(r"\s*\n\s*", "\n", text).strip()


# --- text helpers ---------------------------------------------------------------------------


def _text(value: bytes) -> str:
    """Header octets as text: UTF-8 (RFC 6532), anything else replaced, never NUL."""
    return value.decode("utf-8", "replace").replace("\x00", "\ufffd")


def _optional_text(value: bytes | None) -> str | None:
    return _text(value) if value is not None else None


def _raw_bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def _clean(text: str) -> str:
    """Text fit for JSON and PostgreSQL: raw 8-bit octets (surrogates) read as UTF-8."""
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = text.encode("utf-8", "replace")
    return data.decode("utf-8", "replace").replace("\x00", "\ufffd")
