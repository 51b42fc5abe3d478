"""FETCH attributes and modifiers, and their parser (RFC 9051 §6.4.5, RFC 3501 §6.4.5).

Also BINARY[] / BINARY.PEEK[] / BINARY.SIZE[] (RFC 3516 §4.1), MODSEQ (RFC 7162 §3.1.4.1)
and the CHANGEDSINCE / VANISHED modifiers (RFC 7162 §3.1.4, §3.2.6). The macros ALL, FAST
and FULL come back expanded into the attributes they stand for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias

from apps.imap.lexer import MAX_DEPTH, MAX_NUMBER, MAX_NUMBER64, Cursor

# RFC 9051 §9 "fetch-att" without arguments (RFC822* are RFC 3501 only; MODSEQ is RFC 7162).
SIMPLE_ATTRIBUTES = frozenset(
    {
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.SIZE",
        "RFC822.TEXT",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
        "MODSEQ",
    }
)

_NAME = re.compile(rb"[A-Za-z0-9.]+")
_PART = r"[1-9][0-9]{0,9}(?:\.[1-9][0-9]{0,9})*"  # RFC 9051 §9 "section-part"
_MSGTEXT = r"HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT"  # RFC 9051 §9 "section-msgtext"
# RFC 9051 §9 "section-spec" = section-msgtext / (section-part ["." section-text]).
_SECTION_SPEC = re.compile(rf"(?:({_PART})(?:\.({_MSGTEXT}|MIME))?|({_MSGTEXT}))", re.IGNORECASE)
_SECTION_CHARS = re.compile(rb"[A-Za-z0-9.]+")
_BINARY_PART = re.compile(_PART.encode())
_PARTIAL = re.compile(rb"<([0-9]{1,19})\.([0-9]{1,19})>")  # RFC 9051 §9 "partial"
_PLAIN_ATOM = re.compile(r"[!#$&'+\-.0-9:;<=>?@A-Z^_`a-z|~]+")


@dataclass(frozen=True, slots=True)
class FetchAttr:
    """An attribute without section: FLAGS, UID, ENVELOPE, BODYSTRUCTURE, MODSEQ, RFC822..."""

    name: str


@dataclass(frozen=True, slots=True)
class Section:
    """RFC 9051 §6.4.5 section: a MIME part path plus HEADER, HEADER.FIELDS[.NOT], TEXT or MIME.

    Section() is the whole message, BODY[]. `fields` are the header names as sent.
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        spec = ".".join([*map(str, self.part), *([self.text] if self.text else [])])
        if self.fields:
            spec += " (" + " ".join(_render_astring(name) for name in self.fields) + ")"
        return spec


@dataclass(frozen=True, slots=True)
class Partial:
    """<offset.length>: at most `length` octets starting at `offset`."""

    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class FetchBody:
    """BODY[section]<partial> or BODY.PEEK[...] (which leaves \\Seen alone)."""

    section: Section
    partial: Partial | None = None
    peek: bool = False

    def response_name(self) -> str:
        """The item name in the FETCH response: BODY[section]<origin>, never .PEEK."""
        origin = f"<{self.partial.offset}>" if self.partial else ""
        return f"BODY[{self.section}]{origin}"


@dataclass(frozen=True, slots=True)
class FetchBinary:
    """BINARY[part]<partial> or BINARY.PEEK[...] (RFC 3516 §4.1): decoded content."""

    part: tuple[int, ...]
    partial: Partial | None = None
    peek: bool = False

    def response_name(self) -> str:
        origin = f"<{self.partial.offset}>" if self.partial else ""
        return f"BINARY[{'.'.join(map(str, self.part))}]{origin}"


@dataclass(frozen=True, slots=True)
class FetchBinarySize:
    """BINARY.SIZE[part] (RFC 3516 §4.1): size of the decoded content."""

    part: tuple[int, ...]

    def response_name(self) -> str:
        return f"BINARY.SIZE[{'.'.join(map(str, self.part))}]"


FetchItem: TypeAlias = FetchAttr | FetchBody | FetchBinary | FetchBinarySize

_ALL = (FetchAttr("FLAGS"), FetchAttr("INTERNALDATE"), FetchAttr("RFC822.SIZE"))
# RFC 9051 §6.4.5: the macros and what they are equivalent to.
MACROS: dict[str, tuple[FetchItem, ...]] = {
    "FAST": _ALL,
    "ALL": (*_ALL, FetchAttr("ENVELOPE")),
    "FULL": (*_ALL, FetchAttr("ENVELOPE"), FetchAttr("BODY")),
}


def parse_fetch_items(cur: Cursor) -> tuple[FetchItem, ...]:
    """("ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")")."""
    if cur.peek_is(b"("):
        return tuple(cur.paren_list(lambda: _fetch_att(cur)))
    macro = MACROS.get(cur.peek_keyword())
    if macro is not None:
        cur.keyword()
        return macro
    return (_fetch_att(cur),)


def parse_fetch_modifiers(cur: Cursor) -> tuple[int | None, bool]:
    """RFC 4466 §2.4 "fetch-modifiers": (CHANGEDSINCE n, VANISHED) per RFC 7162 §3.1.4/§3.2.6."""
    seen: dict[str, int | None] = {}

    def modifier() -> None:
        word = cur.keyword()
        if word in seen:
            cur.fail(f"Duplicate FETCH modifier {word}")
        if word == "CHANGEDSINCE":
            cur.sp()
            seen[word] = cur.number(limit=MAX_NUMBER64, nonzero=True)  # "mod-sequence-value"
        elif word == "VANISHED":
            seen[word] = None
        else:
            cur.fail("Unknown FETCH modifier")

    cur.paren_list(modifier)
    return seen.get("CHANGEDSINCE"), "VANISHED" in seen


def _fetch_att(cur: Cursor) -> FetchItem:
    """RFC 9051 §9 "fetch-att", plus RFC 3501 RFC822* and RFC 7162 MODSEQ."""
    name = cur.match(_NAME, "a FETCH attribute").decode("ascii").upper()
    if name in ("BODY", "BODY.PEEK") and cur.peek_is(b"["):
        section = _section(cur)
        return FetchBody(section, _partial(cur), peek=name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK"):
        part = _binary_part(cur)
        return FetchBinary(part, _partial(cur), peek=name == "BINARY.PEEK")
    if name == "BINARY.SIZE":
        return FetchBinarySize(_binary_part(cur))
    if name not in SIMPLE_ATTRIBUTES:
        cur.pos -= len(name)
        cur.fail("Unknown FETCH attribute")
    return FetchAttr(name)


def _section(cur: Cursor) -> Section:
    """RFC 9051 §9 "section" = "[" [section-spec] "]"."""
    cur.expect(b"[", "'['")
    if cur.take(b"]"):
        return Section()
    raw = cur.match(_SECTION_CHARS, "a section").decode("ascii")
    spec = _SECTION_SPEC.fullmatch(raw)
    if spec is None:
        cur.fail("Invalid section")
    part_text, part_suffix, bare_text = spec.groups()
    part = _part_numbers(cur, part_text) if part_text else ()
    text = (part_suffix or bare_text or "").upper() or None
    fields: tuple[str, ...] = ()
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        cur.sp()  # RFC 9051 §9 "header-list" = "(" header-fld-name *(SP header-fld-name) ")"
        fields = tuple(cur.paren_list(lambda: cur.astring_text("Header field name")))
    cur.expect(b"]", "']'")
    return Section(part, text, fields)


def _binary_part(cur: Cursor) -> tuple[int, ...]:
    """RFC 3516 §4.1 "section-binary" = "[" [section-part] "]"."""
    cur.expect(b"[", "'['")
    if cur.take(b"]"):
        return ()
    part = _part_numbers(cur, cur.match(_BINARY_PART, "a part number").decode("ascii"))
    cur.expect(b"]", "']'")
    return part


def _part_numbers(cur: Cursor, text: str) -> tuple[int, ...]:
    numbers = tuple(int(n) for n in text.split("."))
    if len(numbers) > MAX_DEPTH or max(numbers) > MAX_NUMBER:
        cur.fail("Part number out of range")
    return numbers


def _partial(cur: Cursor) -> Partial | None:
    found = _PARTIAL.match(cur.data, cur.pos)
    if found is None:
        if cur.peek_is(b"<"):
            cur.fail("Invalid <offset.length>")
        return None
    offset, length = int(found.group(1)), int(found.group(2))
    if offset > MAX_NUMBER64 or not 0 < length <= MAX_NUMBER64:
        cur.fail("Invalid <offset.length>")
    cur.pos = found.end()
    return Partial(offset, length)


def _render_astring(name: str) -> str:
    if _PLAIN_ATOM.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
