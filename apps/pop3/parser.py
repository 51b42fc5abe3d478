"""POP3 command lines to commands: pure functions, no I/O and no state.

RFC 1939 §3: a command is a case-insensitive keyword, then arguments separated by spaces.
USER and PASS take the rest of the line, so a password may hold spaces.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from apps.pop3 import replies

# RFC 1939 §3 and RFC 2449 §4: a message number or line count is a decimal number;
# ten digits cover any maildrop and keep int() away from absurd inputs.
MAX_DIGITS = 10

# How each command's arguments look: (least, most) plain arguments, or REST for the
# whole remainder of the line.
REST = (-1, -1)
SHAPES: dict[str, tuple[int, int]] = {
    "CAPA": (0, 0),  # RFC 2449 §5
    "STLS": (0, 0),  # RFC 2595 §4
    "USER": REST,  # RFC 1939 §7
    "PASS": REST,  # RFC 1939 §7
    "APOP": REST,  # RFC 1939 §7 (refused: it needs the plain password on the server)
    "AUTH": (0, 2),  # RFC 5034 §4: AUTH mechanism [initial-response]
    "QUIT": (0, 0),  # RFC 1939 §5, §6
    "STAT": (0, 0),  # RFC 1939 §5
    "LIST": (0, 1),  # RFC 1939 §5
    "RETR": (1, 1),  # RFC 1939 §5
    "DELE": (1, 1),  # RFC 1939 §5
    "NOOP": (0, 0),  # RFC 1939 §5
    "RSET": (0, 0),  # RFC 1939 §5
    "TOP": (2, 2),  # RFC 1939 §7
    "UIDL": (0, 1),  # RFC 1939 §7
}
# Arguments that are message numbers (1-based) and line counts (0 or more).
MESSAGE_ARGS = {"LIST", "RETR", "DELE", "TOP", "UIDL"}


class CommandError(Exception):
    """A line that is not a valid command; `reply` is the -ERR to send."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...] = ()
    numbers: tuple[int, ...] = ()  # LIST, RETR, DELE, UIDL: [msg]; TOP: (msg, lines)

    @property
    def text(self) -> str:
        """The single argument: USER's name, PASS's password."""
        return self.args[0] if self.args else ""


def parse_command(line: bytes) -> Command:
    """One command line (its CRLF optional) to a Command, or CommandError."""
    text = line.rstrip(b"\r\n").decode("utf-8", "replace")
    keyword, _, rest = text.partition(" ")
    name = keyword.upper()
    shape = SHAPES.get(name)
    if shape is None:
        raise CommandError(replies.UNKNOWN_COMMAND)
    if shape == REST:
        if not rest:
            raise CommandError(replies.BAD_SYNTAX)
        return Command(name, (rest,))
    args = tuple(rest.split())
    least, most = shape
    if not least <= len(args) <= most:
        raise CommandError(replies.BAD_SYNTAX)
    numbers = _numbers(name, args) if name in MESSAGE_ARGS else ()
    return Command(name, args, numbers)


def _numbers(name: str, args: tuple[str, ...]) -> tuple[int, ...]:
    numbers = tuple(_decimal(arg) for arg in args)
    if numbers and numbers[0] < 1:  # RFC 1939 §5: messages are numbered from 1
        raise CommandError(replies.NO_SUCH_MESSAGE)
    return numbers


def _decimal(arg: str) -> int:
    if not arg.isascii() or not arg.isdigit() or len(arg) > MAX_DIGITS:
        raise CommandError(replies.BAD_SYNTAX)
    return int(arg)


def decode_sasl_plain(response: str) -> tuple[str, str, str]:
    """A base64 SASL PLAIN response (RFC 4616 §2) to (authzid, authcid, password).

    RFC 5034 §4: "=" is an empty initial response. Raises CommandError when the text is
    not base64 or not three NUL-separated parts.
    """
    if response == "=":
        raise CommandError(replies.AUTH_FAILED)
    try:
        raw = base64.b64decode(response.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise CommandError(replies.AUTH_BAD_BASE64) from exc
    parts = raw.split(b"\0")
    if len(parts) != 3:
        raise CommandError(replies.AUTH_FAILED)
    authzid, authcid, password = (part.decode("utf-8", "replace") for part in parts)
    return authzid, authcid, password
