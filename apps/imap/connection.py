"""One IMAP client's byte stream: reading, buffered writing, STARTTLS and COMPRESS=DEFLATE.

No protocol knowledge lives here. After COMPRESS (RFC 4978) the session keeps reading
from `reader`, which is then a second StreamReader fed by a task that inflates what the
socket delivers; writes are deflated and flushed (Z_SYNC_FLUSH) at every drain, so each
response reaches the client whole.

Writes are gathered and handed to the transport at each drain (or once COALESCE_BYTES
are waiting), so a command's untagged lines and its tagged reply leave in one TLS record
and one send(): written one by one, a SELECT's lines cost a TLS record and a system call
each.

The compressor is let go after each flush and made again for the next write: a flushed
DEFLATE stream is byte-aligned between blocks, so a new compressor's blocks simply follow
(RFC 1951 §3.2.3; nothing refers back past the flush), and an idle connection then holds
no compressor (about 120 KiB each; phones keep IMAP connections idle all day). The
inflater must stay: the client's compressor may refer back up to 32 KiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import zlib

from apps.imap import limits

log = logging.getLogger(__name__)
READ_CHUNK = 65536
# RFC 4978 §4: raw DEFLATE (RFC 1951), no zlib header; a 32 KiB window.
DEFLATE_WBITS = -15
# Level 1 is the usual trade: most of the saving for a fraction of the CPU.
DEFLATE_LEVEL = 1
# Gathered writes go to the transport at this size even before a drain: big FETCH bodies
# stream instead of being copied into one buffer.
COALESCE_BYTES = 64 * 1024


class _Gate:
    """A stand-in transport for the inflated StreamReader: it pauses the inflating task
    when the reader's buffer is full (StreamReader calls pause/resume_reading)."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()

    def pause_reading(self) -> None:
        self.open.clear()

    def resume_reading(self) -> None:
        self.open.set()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def _no_delay(writer: asyncio.StreamWriter) -> None:
    """Turn Nagle's algorithm off. asyncio does so only for sockets whose proto is
    IPPROTO_TCP, and the supervisor's sockets say 0; without it the tagged line that
    follows a command's untagged data waits ~40 ms for the client's delayed ACK."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Connection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, tls: bool
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.is_tls = tls
        self.compressed = False
        _no_delay(writer)
        peer = writer.get_extra_info("peername")
        self.peer_ip = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        self._deflate: zlib._Compress | None = None
        self._pump: asyncio.Task[None] | None = None
        self._gathered: list[bytes] = []
        self._gathered_bytes = 0

    def write(self, data: bytes) -> None:
        if self.compressed:
            if self._deflate is None:
                self._deflate = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, DEFLATE_WBITS)
            data = self._deflate.compress(data)
        if data:
            self._gathered.append(data)
            self._gathered_bytes += len(data)
            if self._gathered_bytes >= COALESCE_BYTES:
                self._hand_over()

    def _hand_over(self) -> None:
        """Give what was gathered to the transport, in one write."""
        if self._deflate is not None:
            self._gathered.append(self._deflate.flush(zlib.Z_SYNC_FLUSH))
            self._deflate = None
        if self._gathered:
            gathered = self._gathered
            self._gathered, self._gathered_bytes = [], 0
            self.writer.write(gathered[0] if len(gathered) == 1 else b"".join(gathered))

    async def drain(self) -> None:
        self._hand_over()
        async with asyncio.timeout(limits.WRITE_TIMEOUT):
            await self.writer.drain()

    async def send(self, data: bytes) -> None:
        self.write(data)
        await self.drain()

    def has_buffered_input(self) -> bool:
        """Whether the client already sent more than we read (a pipeline after STARTTLS)."""
        return bool(getattr(self.reader, "_buffer", b""))

    def hold_input(self) -> None:
        """Stop reading from the socket, so the client's TLS hello, sent as soon as it sees
        our OK, waits in the kernel for the TLS layer instead of landing in `reader`."""
        transport = self.writer.transport
        assert isinstance(transport, asyncio.ReadTransport)
        transport.pause_reading()

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Upgrade to TLS (asyncio resumes reading under the TLS layer). A failed handshake
        is routine on the internet (scanners, old clients): one line, then it raises."""
        try:
            await self.writer.start_tls(context, ssl_handshake_timeout=limits.TLS_HANDSHAKE_TIMEOUT)
        except (OSError, TimeoutError) as error:  # ssl.SSLError is an OSError
            log.info("TLS handshake with %s failed: %s", self.peer_ip, error)
            raise
        self.is_tls = True

    def start_compression(self, max_line: int) -> None:
        """Switch both directions to DEFLATE (RFC 4978 §3), right after the tagged OK."""
        inflated = asyncio.StreamReader(limit=max_line + 1024)
        gate = _Gate()
        inflated.set_transport(gate)  # type: ignore[arg-type]
        self._pump = asyncio.create_task(self._inflate(self.reader, inflated, gate))
        self.reader = inflated
        self.compressed = True

    async def _inflate(
        self, source: asyncio.StreamReader, target: asyncio.StreamReader, gate: _Gate
    ) -> None:
        inflate = zlib.decompressobj(DEFLATE_WBITS)
        try:
            while chunk := await source.read(READ_CHUNK):
                # Bounded steps, so a small bomb cannot expand into memory all at once.
                while chunk:
                    target.feed_data(inflate.decompress(chunk, READ_CHUNK))
                    chunk = inflate.unconsumed_tail
                    await gate.open.wait()
        except (zlib.error, ConnectionError, OSError):
            self.abort()
        finally:
            target.feed_eof()

    def close(self) -> None:
        """Close after what was written so far (a BYE, say) has gone out."""
        if self._pump is not None:
            self._pump.cancel()
        with contextlib.suppress(RuntimeError, OSError):  # the transport is already gone
            self._hand_over()
        self.writer.close()

    async def wait_closed(self) -> None:
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (OSError, TimeoutError, ssl.SSLError):
            pass

    def abort(self) -> None:
        """Cut the connection now (shutdown, a broken stream), without a TLS goodbye."""
        self.writer.transport.abort()
