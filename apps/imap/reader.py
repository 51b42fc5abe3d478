"""Read one IMAP client command off an asyncio stream, literals included (RFC 9051 §4.3).

`read_command` returns the command in wire form, the input of `parser.parse_command`: its
lines with each literal's octets after the CRLF that follows the ``{n}`` marker, the final
CRLF dropped (a bare LF is tolerated and written back as CRLF). Along the way it asks for
synchronising literals with a continuation request, takes LITERAL+ / LITERAL- ones
(RFC 7888) straight away, and enforces the line and literal limits, answering the client
itself. Every way of not returning a command is a `ReadError` subclass that says what the
session should do next. `read_line` reads one plain line: an IDLE "DONE" (RFC 2177 §3) or an
AUTHENTICATE response (RFC 9051 §6.2.2), neither of which may carry literals.
"""

from __future__ import annotations

import asyncio
import re
from typing import NoReturn, Protocol

from apps.imap.lexer import peek_tag

# RFC 7162 §4 asks servers to take command lines of at least 8192 octets; long UID sets
# from mobile clients go past that, so the default follows Dovecot's 64 KiB.
DEFAULT_MAX_LINE = 65536
# RFC 7888 §5 / RFC 9051 §4.3: under LITERAL- a non-synchronising literal is at most 4096.
LITERAL_MINUS_LIMIT = 4096
# Literals in one command. MULTIAPPEND (RFC 3502) sends one per message.
MAX_LITERALS = 1000
CONTINUATION = b"+ Ready for literal data\r\n"  # RFC 9051 §7.5 command continuation request

# RFC 9051 §9 "literal" / "literal8" marker ending a line; "+" is RFC 7888 §3.
_MARKER = re.compile(rb"~?\{([0-9]{1,19})(\+?)\}$")
_KEEP = 64  # octets kept from either end of a discarded line (tag; literal marker)


class Writer(Protocol):
    """What `read_command` needs of the stream writer (asyncio.StreamWriter fits)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


class ReadError(Exception):
    """No command came out; the subclass says why and what the session should do."""


class ConnectionClosed(ReadError):
    """The client closed the connection, possibly halfway through a command."""


class LineTooLong(ReadError):
    """`read_line` only: the line passed `max_line` and was read to its end and dropped."""

    def __init__(self, head: bytes, tail: bytes) -> None:
        super().__init__("line too long")
        self.head = head  # the first octets, where the tag is
        self.tail = tail  # the last octets without CRLF, where a literal marker would be


class CommandRejected(ReadError):
    """The command was answered (BAD, or NO [TOOBIG]) and dropped: read the next one."""

    def __init__(self, response: bytes) -> None:
        super().__init__(response.decode("ascii", "replace").strip())
        self.response = response


class MustDisconnect(ReadError):
    """A "* BYE" was sent because the stream can no longer be followed: close it now."""


async def read_line(reader: asyncio.StreamReader, *, max_line: int) -> bytes:
    """One line without its line ending; LineTooLong past `max_line` octets.

    The StreamReader's own `limit` must be at least `max_line`; a longer line is
    LineTooLong either way, and is always consumed so the stream stays in step.
    """
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        raise ConnectionClosed("connection closed") from None
    except asyncio.LimitOverrunError as exc:
        head = await _read_exactly(reader, exc.consumed)
        tail = await _discard_line(reader, head[-_KEEP:])
        raise LineTooLong(head[:_KEEP], tail) from None
    line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
    if len(line) > max_line:
        raise LineTooLong(line[:_KEEP], line[-_KEEP:])
    return line


async def read_command(
    reader: asyncio.StreamReader,
    writer: Writer,
    *,
    max_line: int = DEFAULT_MAX_LINE,
    max_literal: int,
    literal_plus_limit: int | None = None,
    max_literals: int = MAX_LITERALS,
) -> bytes:
    """Read one command with all its literals, in wire form (see the module docstring).

    `max_literal` bounds each literal (the APPENDLIMIT, RFC 7889). `literal_plus_limit` is
    None when LITERAL+ is advertised, or LITERAL_MINUS_LIMIT under LITERAL- (and IMAP4rev2).
    Raises ConnectionClosed, CommandRejected (answered; go on) or MustDisconnect (BYE sent).
    """
    chunks: list[bytes] = []
    tag: str | None = None
    literals = 0
    while True:
        line = await _command_line(reader, writer, max_line, tag)
        if not chunks:
            tag = peek_tag(line)
        chunks.append(line)
        marker = _MARKER.search(line)
        if marker is None:
            return b"".join(chunks)
        size, synchronising = int(marker.group(1)), not marker.group(2)
        literals += 1
        if literals > max_literals:
            await _refuse(writer, tag, synchronising, "BAD", None, "Too many literals")
        await _admit_literal(writer, tag, size, synchronising, max_literal, literal_plus_limit)
        chunks.append(b"\r\n")
        chunks.append(await _read_exactly(reader, size))


async def _command_line(
    reader: asyncio.StreamReader, writer: Writer, max_line: int, tag: str | None
) -> bytes:
    try:
        return await read_line(reader, max_line=max_line)
    except LineTooLong as exc:
        marker = _MARKER.search(exc.tail)
        tag = tag or peek_tag(exc.head)
        if marker is not None and marker.group(2):
            # Its non-synchronising literal is already on the way and we cannot tell
            # where it ends without trusting the line we refused: RFC 7888 §4, close.
            await _bye(writer, tag, "BAD", None, "Command line too long")
        response = f"{tag or '*'} BAD Command line too long\r\n".encode()
        await _send(writer, response)
        raise CommandRejected(response) from None


async def _admit_literal(
    writer: Writer,
    tag: str | None,
    size: int,
    synchronising: bool,
    max_literal: int,
    literal_plus_limit: int | None,
) -> None:
    """Let the literal come (continuation request if synchronising), or refuse it."""
    if size > max_literal:
        # RFC 7889 §4 / RFC 9051 §7.1: NO [TOOBIG] instead of the continuation request.
        await _refuse(writer, tag, synchronising, "NO", "TOOBIG", "Literal too big")
    if not synchronising and literal_plus_limit is not None and size > literal_plus_limit:
        # RFC 7888 §5: LITERAL- servers take at most 4096 octets without a continuation.
        await _bye(writer, tag, "BAD", "TOOBIG", "Non-synchronizing literal over 4096 octets")
    if synchronising:
        await _send(writer, CONTINUATION)


async def _refuse(
    writer: Writer, tag: str | None, synchronising: bool, status: str, code: str | None, text: str
) -> NoReturn:
    """Refuse a literal: a synchronising one was never sent, so the command just ends here;
    a non-synchronising one is arriving regardless (RFC 7888 §4), so the connection goes."""
    if not synchronising:
        await _bye(writer, tag, "BAD", code, text)
    response = _status_line(tag, status, code, text)
    await _send(writer, response)
    raise CommandRejected(response)


async def _bye(
    writer: Writer, tag: str | None, status: str, code: str | None, text: str
) -> NoReturn:
    """Answer the command, announce the close (RFC 9051 §7.1.5 BYE), raise MustDisconnect."""
    bye = b"* BYE " + (f"[{code}] " if code else "").encode() + text.encode() + b"\r\n"
    await _send(writer, _status_line(tag, status, code, text) + bye)
    raise MustDisconnect(text)


def _status_line(tag: str | None, status: str, code: str | None, text: str) -> bytes:
    return f"{tag or '*'} {status} {f'[{code}] ' if code else ''}{text}\r\n".encode()


async def _send(writer: Writer, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def _read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise ConnectionClosed("connection closed inside a literal") from None


async def _discard_line(reader: asyncio.StreamReader, tail: bytes) -> bytes:
    """Read and drop the rest of a line; return its last octets without the line ending."""
    while True:
        try:
            chunk = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            tail = (tail + await _read_exactly(reader, exc.consumed))[-_KEEP:]
            continue
        except asyncio.IncompleteReadError:
            raise ConnectionClosed("connection closed") from None
        return (tail + chunk).rstrip(b"\r\n")[-_KEEP:]
