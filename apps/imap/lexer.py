"""Byte scanner for IMAP client commands: the tokens of RFC 9051 §9 and RFC 3501 §9.

Input is one whole command in wire form, as `reader.read_command` returns it: the command
line with every literal inlined as ``{n}`` / ``{n+}`` / ``~{n}`` CRLF and then its n octets,
with or without the final CRLF. Literals carry their own length, so the bytes parse without
any side channel, and tests can write commands exactly as a client puts them on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from typing import NoReturn, TypeVar

from apps.imap.mutf7 import decode_mutf7
from apps.imap.seqset import SequenceSet

T = TypeVar("T")

# No RFC bounds nesting. Real clients nest search keys a handful of levels (Thunderbird's
# quick filter ORs a few fields; a "from any of these people" filter ORs a few dozen).
# Each level costs two or three Python frames, so 100 stays far under the interpreter's
# recursion limit of 1000: "((((..." or "NOT NOT NOT ..." earns a BAD, not a RecursionError.
MAX_DEPTH = 100
# Items in one list: fetch attributes, flags, search keys in a group, header names, LIST
# patterns, ID pairs, messages in one MULTIAPPEND. Generous for clients, bounded for us.
MAX_ITEMS = 1000

MAX_NUMBER = 4_294_967_295  # RFC 9051 §9 "number": unsigned 32-bit
MAX_NUMBER64 = 9_223_372_036_854_775_807  # RFC 9051 §9 "number64": signed 63-bit, >= 0

# RFC 9051 §9 "atom-specials" = "(" / ")" / "{" / SP / CTL / list-wildcards /
# quoted-specials / resp-specials; ATOM-CHAR is any CHAR (0x01-0x7f) except those.
_ATOM = re.compile(rb'[^(){ %*"\\\]\x00-\x1f\x7f-\xff]+')
_ASTRING_ATOM = re.compile(rb'[^(){ %*"\\\x00-\x1f\x7f-\xff]+')  # RFC 9051 §9 "ASTRING-CHAR"
_LIST_CHARS = re.compile(rb'[^(){ "\\\x00-\x1f\x7f-\xff]+')  # RFC 9051 §9 "list-char"
_TAG = re.compile(rb'[^(){ %*"\\+\x00-\x1f\x7f-\xff]+')  # RFC 9051 §9 "tag"
# RFC 9051 §9 "quoted"; QUOTED-CHAR admits UTF-8 (RFC 9051) and, leniently, other 8-bit.
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_QUOTED_ESCAPE = re.compile(rb'\\(["\\])')
# RFC 9051 §9 "literal" / "literal8"; "+" is RFC 7888 §3 LITERAL+ / LITERAL-.
_LITERAL = re.compile(rb"(~?)\{([0-9]{1,19})(\+?)\}\r\n")
_DIGITS = re.compile(rb"[0-9]+")
_SEQ_CHARS = re.compile(rb"[0-9*:,$]+")
# RFC 9051 §9 "date" = date-text / DQUOTE date-text DQUOTE.
_DATE_TEXT = rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})"
_DATE = re.compile(_DATE_TEXT + rb'|"' + _DATE_TEXT + rb'"')
# RFC 9051 §9 "date-time"; date-day-fixed is (SP DIGIT) / 2DIGIT.
_DATE_TIME = re.compile(
    rb'"([ 0-9][0-9])-([A-Za-z]{3})-([0-9]{4}) '
    rb'([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"'
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
# RFC 9051 §9 "flag": system flags are case-insensitive; keep one spelling.
_SYSTEM_FLAGS = {
    f.upper(): f for f in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")
}


class ParseError(Exception):
    """A malformed command. The session answers `response()`: "tag BAD message" by default.

    `tag` is set once the command's tag was read, so the reply can carry it; `code` is an
    optional response code (RFC 9051 §7.1) such as "CLIENTBUG" or "BADCHARSET".
    """

    status = "BAD"

    def __init__(self, message: str, *, tag: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tag = tag
        self.code = code

    def response(self) -> bytes:
        """The complete tagged (or, without a tag, untagged) response line."""
        code = f"[{self.code}] " if self.code else ""
        return f"{self.tag or '*'} {self.status} {code}{self.message}\r\n".encode()


class BadCharsetError(ParseError):
    """SEARCH/SORT/THREAD named a charset we cannot decode: RFC 9051 §6.4.4 wants NO, not BAD."""

    status = "NO"


def peek_tag(line: bytes) -> str | None:
    """The tag at the start of a command line, if it has a valid one."""
    match = _TAG.match(line)
    return match.group().decode("ascii") if match else None


class Cursor:
    """A position in one command plus the nesting depth reached; methods consume tokens."""

    __slots__ = ("data", "depth", "invalid_mailbox", "pos", "utf8")

    def __init__(self, data: bytes, *, utf8: bool = False) -> None:
        self.data = data
        self.pos = 0
        self.depth = 0
        self.utf8 = utf8  # RFC 6855 §3: after ENABLE UTF8=ACCEPT, names are UTF-8, not mUTF-7
        # A mailbox argument that is not modified UTF-7 (see `mailbox_name`).
        self.invalid_mailbox = False

    # -- structure ---------------------------------------------------------------------

    def fail(self, message: str) -> NoReturn:
        raise ParseError(f"{message} (at octet {self.pos})")

    def peek(self) -> int:
        """The next byte, or -1 at the end."""
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def peek_is(self, char: bytes) -> bool:
        return self.data.startswith(char, self.pos)

    def take(self, char: bytes) -> bool:
        if self.data.startswith(char, self.pos):
            self.pos += len(char)
            return True
        return False

    def expect(self, char: bytes, what: str) -> None:
        if not self.take(char):
            self.fail(f"Expected {what}")

    def sp(self) -> None:
        self.expect(b" ", "SP")

    def at_end(self) -> bool:
        rest = len(self.data) - self.pos
        return rest == 0 or (rest == 2 and self.data.endswith(b"\r\n"))

    def end(self) -> None:
        if not self.at_end():
            self.fail("Unexpected characters after the command")

    def match(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        found = pattern.match(self.data, self.pos)
        if found is None:
            self.fail(f"Expected {what}")
        self.pos = found.end()
        return found.group()

    @contextmanager
    def nested(self) -> Iterator[None]:
        """One level deeper: parentheses, NOT, OR. Bounded by MAX_DEPTH."""
        if self.depth >= MAX_DEPTH:
            self.fail("Nesting too deep")
        self.depth += 1
        yield
        self.depth -= 1

    def paren_list(self, item: Callable[[], T], *, allow_empty: bool = False) -> list[T]:
        """ "(" item *(SP item) ")" — the list shape used all over RFC 9051 §9."""
        self.expect(b"(", "'('")
        items: list[T] = []
        with self.nested():
            if not (allow_empty and self.peek_is(b")")):
                items.append(item())
                while self.take(b" "):
                    if len(items) >= MAX_ITEMS:
                        self.fail("Too many items in list")
                    items.append(item())
            self.expect(b")", "')'")
        return items

    # -- atoms and numbers -------------------------------------------------------------

    def tag(self) -> str:
        return self.match(_TAG, "a tag").decode("ascii")

    def atom(self) -> str:
        return self.match(_ATOM, "an atom").decode("ascii")

    def keyword(self) -> str:
        """An atom, upper-cased: command names and keywords are case-insensitive."""
        return self.atom().upper()

    def peek_keyword(self) -> str:
        """The upper-cased atom at the cursor without consuming it ("" if none)."""
        found = _ATOM.match(self.data, self.pos)
        return found.group().decode("ascii").upper() if found else ""

    def take_keyword(self, word: str) -> bool:
        if self.peek_keyword() == word:
            self.pos += len(word)
            return True
        return False

    def number(self, *, limit: int = MAX_NUMBER, nonzero: bool = False) -> int:
        """RFC 9051 §9 "number" (or "number64"/"nz-number" by `limit` and `nonzero`)."""
        digits = self.match(_DIGITS, "a number")
        if len(digits) > 20 or int(digits) > limit:
            self.fail("Number out of range")
        if nonzero and int(digits) == 0:
            self.fail("Expected a non-zero number")
        return int(digits)

    def number64(self) -> int:
        return self.number(limit=MAX_NUMBER64)

    def sequence_set(self) -> SequenceSet:
        text = self.match(_SEQ_CHARS, "a sequence set").decode("ascii")
        try:
            return SequenceSet.parse(text)
        except ValueError as exc:
            self.pos -= len(text)
            self.fail(str(exc).capitalize())

    # -- strings -----------------------------------------------------------------------

    def quoted(self) -> bytes:
        return _QUOTED_ESCAPE.sub(rb"\1", self.match(_QUOTED, "a quoted string")[1:-1])

    def literal(self, *, binary: bool = False) -> tuple[bytes, bool]:
        """A literal (or, if `binary`, literal8 too); returns the data and "was literal8"."""
        found = _LITERAL.match(self.data, self.pos)
        if found is None:
            self.fail("Expected a literal")
        tilde, size = found.group(1) == b"~", int(found.group(2))
        if tilde and not binary:
            self.fail("literal8 is only allowed for message data")
        if size > MAX_NUMBER64:
            self.fail("Literal size out of range")
        start = found.end()
        if start + size > len(self.data):
            self.fail("Literal data is truncated")
        value = self.data[start : start + size]
        if not tilde and b"\x00" in value:
            # RFC 9051 §4.3: a literal is CHAR8 (no NUL); NUL needs literal8 (RFC 3516).
            self.fail("NUL in literal; use literal8")
        self.pos = start + size
        return value, tilde

    def string(self) -> bytes:
        """RFC 9051 §9 "string" = quoted / literal."""
        if self.peek_is(b'"'):
            return self.quoted()
        if self.peek_is(b"{"):
            return self.literal()[0]
        self.fail("Expected a string")

    def astring(self) -> bytes:
        """RFC 9051 §9 "astring" = 1*ASTRING-CHAR / string."""
        if self.peek_is(b'"') or self.peek_is(b"{"):
            return self.string()
        return self.match(_ASTRING_ATOM, "an astring")

    def nstring(self) -> bytes | None:
        """RFC 9051 §9 "nstring" = string / nil."""
        if self.take_keyword("NIL"):
            return None
        return self.string()

    def text(self, raw: bytes, what: str) -> str:
        """Client text as str; RFC 9051 §4.3 strings are UTF-8 (ASCII being a subset)."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{what} is not valid UTF-8")

    def astring_text(self, what: str) -> str:
        return self.text(self.astring(), what)

    # -- mailboxes ---------------------------------------------------------------------

    def mailbox(self) -> str:
        """RFC 9051 §9 "mailbox" = "INBOX" / astring, decoded; INBOX in any case is "INBOX"."""
        name = self.mailbox_name(self.astring())
        return "INBOX" if name.upper() == "INBOX" else name

    def list_mailbox(self) -> str | None:
        """RFC 9051 §9 "list-mailbox" = 1*list-char / string, decoded like a mailbox;
        None for a pattern that is not modified UTF-7, which can match no name."""
        if self.peek_is(b'"') or self.peek_is(b"{"):
            return self.decoded_name(self.string())
        return self.decoded_name(self.match(_LIST_CHARS, "a mailbox pattern"))

    def mailbox_name(self, raw: bytes) -> str:
        """A mailbox argument, decoded. One that is not modified UTF-7 is still well-formed
        syntax (an astring), so it is not a parse error: the cursor notes it and the
        session answers NO, as for any name that cannot exist (RFC 3501 §5.1.3)."""
        name = self.decoded_name(raw)
        if name is None:
            self.invalid_mailbox = True
            return raw.decode("ascii")
        return name

    def decoded_name(self, raw: bytes) -> str | None:
        """A mailbox name or pattern as text; None if it is not modified UTF-7."""
        if self.utf8 or not raw.isascii():
            # RFC 6855 §3 after ENABLE UTF8=ACCEPT; 8-bit names from older clients are
            # taken as the UTF-8 they almost always are.
            return self.text(raw, "Mailbox name")
        try:
            return decode_mutf7(raw)
        except ValueError:
            return None

    # -- flags and dates ---------------------------------------------------------------

    def flag(self) -> str:
        """RFC 9051 §9 "flag": a system flag, "\\" atom, or a keyword atom."""
        if self.take(b"\\"):
            name = "\\" + self.atom()
            return _SYSTEM_FLAGS.get(name.upper(), name)
        return self.atom()

    def flag_list(self) -> tuple[str, ...]:
        """RFC 9051 §9 "flag-list" = "(" [flag *(SP flag)] ")"."""
        return tuple(self.paren_list(self.flag, allow_empty=True))

    def date(self) -> date:
        """RFC 9051 §9 "date", e.g. 1-Feb-1994 or "1-Feb-1994"."""
        found = _DATE.match(self.data, self.pos)
        if found is None:
            self.fail("Expected a date like 1-Feb-1994")
        self.pos = found.end()
        day, month, year = (part for part in found.groups() if part is not None)
        return self._make(lambda: date(int(year), self._month(month), int(day)))

    def date_time(self) -> datetime:
        found = _DATE_TIME.match(self.data, self.pos)
        if found is None:
            self.fail('Expected a date-time like "17-Jul-1996 02:44:25 -0700"')
        day, month, year, hour, minute, second, sign, zone_h, zone_m = found.groups()
        self.pos = found.end()
        if int(zone_m) > 59:
            self.fail("Bad time zone")
        offset = timedelta(hours=int(zone_h), minutes=int(zone_m))
        return self._make(
            lambda: datetime(
                int(year),
                self._month(month),
                int(day),
                int(hour),
                int(minute),
                int(second),
                tzinfo=timezone(-offset if sign == b"-" else offset),
            )
        )

    def _month(self, name: bytes) -> int:
        month = _MONTHS.get(name.decode("ascii").upper())
        if month is None:
            self.fail("Unknown month name")
        return month

    def _make(self, build: Callable[[], T]) -> T:
        try:
            return build()
        except ValueError:
            self.fail("Date out of range")
