"""DATA and BDAT bodies: undo dot-stuffing, find the end of data, cap the size.

The end of DATA is exactly CRLF "." CRLF (RFC 5321 §4.1.1.4). A bare LF or bare CR never
ends a message, so "\\n.\\n" and "\\r.\\r" smuggling attempts stay inside the body as the
bytes they are (RFC 5321 §2.3.8; the 2023 SMTP smuggling advisories).
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import IO

SPOOL_IN_MEMORY = 1024 * 1024  # bytes kept in memory before the spool moves to disk


class Spool:
    """The body as it arrives: in memory while small, then in a temporary file."""

    def __init__(self, limit: int, directory: str | None = None) -> None:
        self.limit = limit
        self.size = 0
        self.too_big = False
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=SPOOL_IN_MEMORY, dir=directory
        )

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            self.too_big = True  # keep reading to the end, store nothing more
        if not self.too_big:
            self.file.write(data)

    def read_all(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def head(self, size: int) -> bytes:
        self.file.seek(0)
        return self.file.read(size)

    def chunks(self, size: int = 1024 * 1024):
        self.file.seek(0)
        while chunk := self.file.read(size):
            yield chunk

    def close(self) -> None:
        self.file.close()


class DataDecoder:
    """Feed it the DATA stream in pieces of any size; it writes the unstuffed body to the
    spool and says when the end line came. Only CRLF ends a line. The reader must not
    read past the end line: `read_piece` never does.
    """

    # An unfinished line longer than this is written out as it comes (bounded memory).
    HOLD = 65536

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.unfinished = b""  # the start of a line whose CRLF has not come yet
        self.mid_line = False  # `unfinished` continues a line already partly written
        self.done = False

    def feed(self, piece: bytes) -> bool:
        """Process one piece; True once the terminating "." line has been seen."""
        lines = (self.unfinished + piece).split(b"\r\n")
        self.unfinished = lines.pop()
        if lines and self.mid_line:
            self.spool.write(lines.pop(0) + b"\r\n")
            self.mid_line = False
        if b"." in lines:  # RFC 5321 §4.1.1.4: a line of one "." ends the data
            del lines[lines.index(b".") :]
            self.done = True
        if lines:  # RFC 5321 §4.5.2: a leading "." was added for transparency
            self.spool.write(b"".join(_unstuff(line) + b"\r\n" for line in lines))
        if len(self.unfinished) > self.HOLD:
            self._write_unfinished()
        return self.done

    def separator(self) -> bytes | None:
        """What the next read may run up to without passing the end line, given what came
        so far; None when the next byte alone may start it (at the start of a line)."""
        if self.mid_line:
            return b"\n.\r\n"
        if not self.unfinished:
            return None
        if self.unfinished in (b".", b".\r"):  # the end line itself may be under way
            return b"\n"
        # Mid-line: the end line starts after a CRLF, whose CR may have come already.
        return b"\n.\r\n"

    def _write_unfinished(self) -> None:
        # A trailing CR stays: with the next piece's LF it ends the line.
        keep = 1 if self.unfinished.endswith(b"\r") else 0
        head = self.unfinished[: len(self.unfinished) - keep]
        self.spool.write(head if self.mid_line else _unstuff(head))
        self.unfinished = self.unfinished[len(head) :]
        self.mid_line = True


async def read_piece(reader: asyncio.StreamReader, decoder: DataDecoder) -> bytes:
    """The next piece of the DATA stream for `decoder`: as much as the reader holds, up to
    a place where the end line may be, and never past it, so that commands pipelined
    behind the data stay in the reader (RFC 2920 §3.1). A message whose lines end in "."
    comes in one or two pieces, not one per line as reading up to each ".\r\n" did."""
    separator = decoder.separator()
    if separator is None:
        return await reader.readexactly(1)
    try:
        return await reader.readuntil(separator)
    except asyncio.LimitOverrunError as overrun:  # a long stretch without one: take it
        return await reader.read(overrun.consumed)


def _unstuff(line: bytes) -> bytes:
    return line[1:] if line[:1] == b"." else line
