"""SEARCH keys as an AST, and their parser (RFC 9051 §6.4.4, RFC 3501 §6.4.4).

Also MODSEQ (RFC 7162 §3.1.5), "$" (RFC 5182) and ESEARCH return options (RFC 4731).
Every node is a frozen dataclass and `SearchKey` is their union, so an SQL compiler can
`match` on it. Keywords that are shorthands become the nodes they stand for: UNSEEN is
SearchFlag("\\Seen", present=False), NEW is RECENT UNSEEN, a group of one key is that key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Literal, TypeAlias

from apps.imap.lexer import MAX_ITEMS, BadCharsetError, Cursor
from apps.imap.seqset import SequenceSet


@dataclass(frozen=True, slots=True)
class SearchAll:
    """ALL: every message in the mailbox."""


@dataclass(frozen=True, slots=True)
class SearchFlag:
    """A flag is set (`present`) or not: ANSWERED, UNSEEN, KEYWORD $Junk, RECENT, OLD..."""

    flag: str  # system flags spelled "\\Seen" etc.; keywords as the client wrote them
    present: bool = True


@dataclass(frozen=True, slots=True)
class SearchHeader:
    """The header field contains `value` (case-insensitive substring); "" means "has it".

    FROM/TO/CC/BCC/SUBJECT become SearchHeader("From", ...) and so on.
    """

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class SearchBody:
    """BODY: the message body (not the header) contains `value`."""

    value: str


@dataclass(frozen=True, slots=True)
class SearchText:
    """TEXT: the header or body contains `value`."""

    value: str


@dataclass(frozen=True, slots=True)
class SearchDate:
    """BEFORE/ON/SINCE (internal date) or SENTBEFORE/SENTON/SENTSINCE (Date: header).

    Dates compare without time or zone (RFC 9051 §6.4.4).
    """

    op: Literal["before", "on", "since"]
    date: date
    sent: bool = False


@dataclass(frozen=True, slots=True)
class SearchSize:
    """LARGER n / SMALLER n: RFC 822 size strictly above or below `size` octets."""

    op: Literal["larger", "smaller"]
    size: int


@dataclass(frozen=True, slots=True)
class SearchSeq:
    """A bare sequence set: messages by sequence number ("$" allowed, RFC 5182)."""

    sequence_set: SequenceSet


@dataclass(frozen=True, slots=True)
class SearchUid:
    """UID set: messages by UID ("$" allowed, RFC 5182)."""

    sequence_set: SequenceSet


@dataclass(frozen=True, slots=True)
class SearchModSeq:
    """MODSEQ [entry entry-type] n (RFC 7162 §3.1.5): mod-sequence >= `modseq`."""

    modseq: int
    entry: str | None = None  # e.g. "/flags/\\Seen"
    entry_type: str | None = None  # "PRIV" / "SHARED" / "ALL"


@dataclass(frozen=True, slots=True)
class SearchNot:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class SearchOr:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class SearchAnd:
    """All keys match: a search program of several keys, or a parenthesised group."""

    keys: tuple[SearchKey, ...]


SearchKey: TypeAlias = (
    SearchAll
    | SearchFlag
    | SearchHeader
    | SearchBody
    | SearchText
    | SearchDate
    | SearchSize
    | SearchSeq
    | SearchUid
    | SearchModSeq
    | SearchNot
    | SearchOr
    | SearchAnd
)

_CHARSET_NAME = re.compile(rb"[A-Za-z0-9!#$%&'+^_`{}~.:()-]{1,64}")  # RFC 2978 §2.3 mime-charset
# RFC 4731 §3.1 "search-return-opt"; SAVE is RFC 5182 §2.1.
RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})

_FLAG_KEYS: dict[str, tuple[str, bool]] = {
    "ANSWERED": ("\\Answered", True),
    "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True),
    "UNDELETED": ("\\Deleted", False),
    "FLAGGED": ("\\Flagged", True),
    "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True),
    "UNSEEN": ("\\Seen", False),
    "DRAFT": ("\\Draft", True),
    "UNDRAFT": ("\\Draft", False),
    "RECENT": ("\\Recent", True),  # RFC 3501 only, like OLD and NEW
    "OLD": ("\\Recent", False),
}
_HEADER_KEYS = {"BCC": "Bcc", "CC": "Cc", "FROM": "From", "SUBJECT": "Subject", "TO": "To"}
_DATE_KEYS: dict[str, tuple[Literal["before", "on", "since"], bool]] = {
    "BEFORE": ("before", False),
    "ON": ("on", False),
    "SINCE": ("since", False),
    "SENTBEFORE": ("before", True),
    "SENTON": ("on", True),
    "SENTSINCE": ("since", True),
}
_SIZE_KEYS: dict[str, Literal["larger", "smaller"]] = {"LARGER": "larger", "SMALLER": "smaller"}


def parse_search_program(cur: Cursor, charset: str | None) -> SearchKey:
    """RFC 9051 §9 "search-program" after any CHARSET: search-key *(SP search-key)."""
    return _SearchParser(cur, _decoder(cur, charset)).program()


def parse_charset(cur: Cursor) -> str:
    """RFC 9051 §9 "charset" = atom / quoted, upper-cased."""
    raw = cur.quoted() if cur.peek_is(b'"') else cur.atom().encode("ascii")
    if not _CHARSET_NAME.fullmatch(raw):
        cur.fail("Invalid charset name")  # it is echoed in NO [BADCHARSET], so keep it tame
    return raw.decode("ascii").upper()


def parse_return_options(cur: Cursor) -> frozenset[str]:
    """ "(" [search-return-opt *(SP search-return-opt)] ")" after RETURN SP (RFC 4731 §3.1)."""
    options = frozenset(cur.paren_list(cur.keyword, allow_empty=True))
    if not options <= RETURN_OPTIONS:
        cur.fail("Unknown SEARCH return option")
    # RFC 4731 §3.1: an empty RETURN list means RETURN (ALL).
    return options or frozenset({"ALL"})


def _decoder(cur: Cursor, charset: str | None) -> Callable[[bytes], str]:
    """Decode search strings per CHARSET; unknown charsets are NO [BADCHARSET] (RFC 9051)."""
    codec = charset or "UTF-8"
    if codec in ("US-ASCII", "UTF-8"):
        codec = "utf-8"  # ASCII is a subset; clients often send UTF-8 without saying so
    try:
        b"a".decode(codec, "replace")  # empty input would skip the codec lookup
    except (LookupError, UnicodeError, ValueError):
        raise BadCharsetError(f"Unsupported charset {codec[:40]}", code="BADCHARSET") from None

    def decode(raw: bytes) -> str:
        try:
            return raw.decode(codec, "replace")
        except (UnicodeError, ValueError):
            cur.fail(f"Search string is not valid {codec[:40]}")

    return decode


class _SearchParser:
    """Recursive descent over search keys; depth is bounded by the cursor."""

    def __init__(self, cur: Cursor, decode: Callable[[bytes], str]) -> None:
        self.cur = cur
        self.decode = decode

    def program(self) -> SearchKey:
        keys = [self.key()]
        while self.cur.take(b" "):
            if len(keys) >= MAX_ITEMS:
                self.cur.fail("Too many search keys")
            keys.append(self.key())
        return keys[0] if len(keys) == 1 else SearchAnd(tuple(keys))

    def key(self) -> SearchKey:
        """RFC 9051 §9 "search-key" (plus RFC 3501 NEW/OLD/RECENT, RFC 7162 MODSEQ)."""
        first = self.cur.peek()
        if first == ord("("):
            keys = self.cur.paren_list(self.key)
            return keys[0] if len(keys) == 1 else SearchAnd(tuple(keys))
        if first != -1 and first in b"0123456789*$":
            return SearchSeq(self.cur.sequence_set())
        word = self.cur.keyword() if self.cur.peek_keyword() else ""
        found = self._without_argument(word)
        if found is not None:
            return found
        if word in ("NOT", "OR"):
            return self._operator(word)
        if word not in _ARGUMENT_KEYS:
            self.cur.fail("Unknown search key")
        self.cur.sp()
        return _ARGUMENT_KEYS[word](self, word)

    def _without_argument(self, word: str) -> SearchKey | None:
        if word in _FLAG_KEYS:
            return SearchFlag(*_FLAG_KEYS[word])
        if word == "ALL":
            return SearchAll()
        if word == "NEW":  # RFC 3501 §6.4.4: "equivalent to (RECENT UNSEEN)"
            return SearchAnd((SearchFlag("\\Recent"), SearchFlag("\\Seen", False)))
        return None

    def _operator(self, word: str) -> SearchKey:
        with self.cur.nested():
            self.cur.sp()
            first = self.key()
            if word == "NOT":
                return SearchNot(first)
            self.cur.sp()
            return SearchOr(first, self.key())

    def _string(self) -> str:
        return self.decode(self.cur.astring())

    def header_key(self, word: str) -> SearchKey:
        if word == "HEADER":  # "HEADER" SP header-fld-name SP astring
            name = self.cur.astring_text("Header name")
            self.cur.sp()
            return SearchHeader(name, self._string())
        return SearchHeader(_HEADER_KEYS[word], self._string())

    def text_key(self, word: str) -> SearchKey:
        return SearchBody(self._string()) if word == "BODY" else SearchText(self._string())

    def keyword_key(self, word: str) -> SearchKey:
        return SearchFlag(self.cur.atom(), word == "KEYWORD")  # RFC 9051 §9 "flag-keyword"

    def date_key(self, word: str) -> SearchKey:
        op, sent = _DATE_KEYS[word]
        return SearchDate(op, self.cur.date(), sent)

    def size_key(self, word: str) -> SearchKey:
        return SearchSize(_SIZE_KEYS[word], self.cur.number64())

    def uid_key(self, word: str) -> SearchKey:
        return SearchUid(self.cur.sequence_set())

    def modseq_key(self, word: str) -> SearchKey:
        """RFC 7162 §3.1.5: "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer."""
        entry = entry_type = None
        if self.cur.peek_is(b'"'):
            entry = self.cur.text(self.cur.quoted(), "MODSEQ entry name")
            if not entry.lower().startswith("/flags/"):
                self.cur.fail("MODSEQ entry name must start with /flags/")
            self.cur.sp()
            entry_type = self.cur.keyword()
            if entry_type not in ("PRIV", "SHARED", "ALL"):
                self.cur.fail("MODSEQ entry type must be priv, shared or all")
            self.cur.sp()
        return SearchModSeq(self.cur.number64(), entry, entry_type)


_ARGUMENT_KEYS: dict[str, Callable[[_SearchParser, str], SearchKey]] = {
    **dict.fromkeys((*_HEADER_KEYS, "HEADER"), _SearchParser.header_key),
    **dict.fromkeys(("BODY", "TEXT"), _SearchParser.text_key),
    **dict.fromkeys(("KEYWORD", "UNKEYWORD"), _SearchParser.keyword_key),
    **dict.fromkeys(_DATE_KEYS, _SearchParser.date_key),
    **dict.fromkeys(_SIZE_KEYS, _SearchParser.size_key),
    "UID": _SearchParser.uid_key,
    "MODSEQ": _SearchParser.modseq_key,
}

__all__ = [
    "RETURN_OPTIONS",
    "SearchAll",
    "SearchAnd",
    "SearchBody",
    "SearchDate",
    "SearchFlag",
    "SearchHeader",
    "SearchKey",
    "SearchModSeq",
    "SearchNot",
    "SearchOr",
    "SearchSeq",
    "SearchSize",
    "SearchText",
    "SearchUid",
    "parse_charset",
    "parse_return_options",
    "parse_search_program",
]
