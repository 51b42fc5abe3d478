"""One client's byte stream: command lines in (bounded), responses out (with
back-pressure), and the switch to TLS. No protocol knowledge lives here.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from apps.pop3 import replies

log = logging.getLogger(__name__)
READ_SIZE = 65536
TLS_HANDSHAKE_TIMEOUT = 30.0


class LineTooLong(Exception):
    """The client sent a line longer than replies.LINE_LIMIT; the rest of it is skipped."""


class Connection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, tls: bool
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.is_tls = tls
        peer = writer.get_extra_info("peername")
        self.peer_ip = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        self._buffer = bytearray()
        self._discarding = False  # inside the tail of a line that was too long
        self._last_read_full = False  # the stream may hold more than we have read

    async def read_line(self) -> bytes | None:
        """The next line with its line end; None at end of stream.

        Raises TimeoutError after replies.IDLE_TIMEOUT without a whole line, and
        LineTooLong once for each line past replies.LINE_LIMIT.
        """
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                if self._discarding:
                    self._discarding = False
                    continue
                if len(line) > replies.LINE_LIMIT:
                    raise LineTooLong
                return line
            if len(self._buffer) > replies.LINE_LIMIT:
                self._buffer.clear()
                if not self._discarding:
                    self._discarding = True
                    raise LineTooLong
            chunk = await asyncio.wait_for(self.reader.read(READ_SIZE), replies.IDLE_TIMEOUT)
            if not chunk:
                return None
            self._last_read_full = len(chunk) == READ_SIZE
            self._buffer += chunk

    def has_pending_input(self) -> bool:
        """Whether the client sent more than we have handled (a pipeline after STLS)."""
        return bool(self._buffer) or self._last_read_full

    async def send(self, *lines: str) -> None:
        """Each line with CRLF, then wait until the client takes them."""
        await self.send_bytes(b"".join(line.encode() + b"\r\n" for line in lines))

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), replies.IDLE_TIMEOUT)

    async def start_tls(self, context: ssl.SSLContext, reply: str | None = None) -> None:
        """Say `reply` (STLS), then switch to TLS without yielding to the loop in between:
        the client's ClientHello must reach the TLS layer, not the plain-text reader. A
        failed handshake is routine on the internet: one line, then it raises."""
        if reply is not None:
            self.writer.write(reply.encode() + b"\r\n")
        try:
            await self.writer.start_tls(context, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        except (OSError, TimeoutError) as error:  # ssl.SSLError is an OSError
            log.info("TLS handshake with %s failed: %s", self.peer_ip, error)
            raise
        self.is_tls = True

    def close(self) -> None:
        self.writer.close()

    async def wait_closed(self) -> None:
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (OSError, TimeoutError, ssl.SSLError):
            pass

    def abort(self) -> None:
        """Cut the connection now (shutdown), without waiting on a TLS goodbye."""
        self.writer.transport.abort()
