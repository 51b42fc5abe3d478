"""DATA and BDAT bodies: undo dot-stuffing, find the end of data, cap the size.

The end of DATA is exactly CRLF "." CRLF (RFC 5321 §4.1.1.4). A bare LF or bare CR never
ends a message, so "\\n.\\n" and "\\r.\\r" smuggling attempts stay inside the body as the
bytes they are (RFC 5321 §2.3.8; the 2023 SMTP smuggling advisories).
"""

from __future__ import annotations

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
    """Feed it what the reader returns (lines ending in CRLF, or pieces of an overlong
    line); it writes the unstuffed body to the spool and says when the end came."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.at_line_start = True
        self.pending_cr = False  # the previous piece ended in CR: a CRLF may be split
        self.done = False

    def feed(self, piece: bytes) -> bool:
        """Process one piece; True once the terminating "." line has been seen."""
        if self.pending_cr and piece.startswith(b"\n"):
            self.spool.write(b"\n")
            piece = piece[1:]
            self.at_line_start = True
        self.pending_cr = False
        if not piece:
            return False
        if self.at_line_start:
            if piece == b".\r\n":
                self.done = True
                return True
            if piece.startswith(b"."):  # RFC 5321 §4.5.2 transparency
                piece = piece[1:]
        self.spool.write(piece)
        self.at_line_start = piece.endswith(b"\r\n")
        self.pending_cr = piece.endswith(b"\r") and not self.at_line_start
        return False
