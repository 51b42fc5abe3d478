"""A stored message, chunk by chunk, as a POP3 multi-line response body: pure, no I/O.

RFC 1939 §3: lines end in CRLF, a line starting with "." gets one more, and the body
ends with ".". Stored messages may use bare LF, so line ends are made CRLF on the way.
Work is done with bytes.replace and find per chunk, so a 50 MB message streams through
a few chunk-sized buffers at C speed.
"""

from __future__ import annotations

CRLF = b"\r\n"
TERMINATOR = b".\r\n"


class MessageEncoder:
    """Feed the stored bytes in order; send what `feed` and `finish` return.

    With `body_lines` (TOP, RFC 1939 §7) only the header, the blank line and that many
    body lines come out; `done` then says the rest need not be read.
    """

    def __init__(self, body_lines: int | None = None) -> None:
        self.body_lines = body_lines
        self.in_header = True
        self.done = False
        self._held = b""  # a trailing CR, which may be half of a CRLF split across chunks
        self._at_line_start = True

    def feed(self, chunk: bytes) -> bytes:
        if self.done:
            return b""
        data = self._held + chunk
        self._held = b""
        if data.endswith(b"\r"):
            data, self._held = data[:-1], b"\r"
        data = data.replace(CRLF, b"\n").replace(b"\n", CRLF)
        if self.body_lines is not None:
            data = self._cut(data)
        return self._stuff(data)

    def finish(self) -> bytes:
        """The end of the response: any held CR, a final CRLF if missing, then "."."""
        tail = b"" if self.done else self._stuff(self._held)
        self._held = b""
        if not self._at_line_start:
            tail += CRLF
        return tail + TERMINATOR

    def _stuff(self, data: bytes) -> bytes:
        if not data:
            return data
        data = data.replace(b"\r\n.", b"\r\n..")
        if self._at_line_start and data.startswith(b"."):
            data = b"." + data
        self._at_line_start = data.endswith(b"\n")
        return data

    def _cut(self, data: bytes) -> bytes:
        """Keep what TOP sends of `data` (CRLF-normalised); set `done` at the cut."""
        start = 0
        if self.in_header:
            start = self._header_end(data)
            if start < 0:
                return data
            self.in_header = False
        assert self.body_lines is not None
        if data.count(CRLF, start) < self.body_lines:
            self.body_lines -= data.count(CRLF, start)
            return data
        end = start
        for _ in range(self.body_lines):
            end = data.index(CRLF, end) + 2
        self.body_lines = 0
        self.done = True
        return data[:end]

    def _header_end(self, data: bytes) -> int:
        """Where the body starts in `data` (after the blank line), or -1 if not in it."""
        if self._at_line_start and data.startswith(CRLF):
            return 2
        found = data.find(b"\r\n\r\n")
        return found + 4 if found >= 0 else -1
