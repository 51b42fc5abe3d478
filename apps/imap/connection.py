"""One IMAP client's byte stream: reading, buffered writing, STARTTLS and COMPRESS=DEFLATE.

No protocol knowledge lives here. After COMPRESS (RFC 4978) the session keeps reading
from `reader`, which is then a second StreamReader fed by a task that inflates what the
socket delivers; writes are deflated and flushed (Z_SYNC_FLUSH) at every drain, so each
response reaches the client whole.

The compressor is let go after each flush and made again for the next write: a flushed
DEFLATE stream is byte-aligned between blocks, so a new compressor's blocks simply follow
(RFC 1951 §3.2.3; nothing refers back past the flush), and an idle connection then holds
no compressor (about 120 KiB each; phones keep IMAP connections idle all day). The
inflater must stay: the client's compressor may refer back up to 32 KiB.
"""

from __future__ import annotations

import asyncio
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

    def write(self, data: bytes) -> None:
        if self.compressed:
            if self._deflate is None:
                self._deflate = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, DEFLATE_WBITS)
            data = self._deflate.compress(data)
        if data:
            self.writer.write(data)

    async def drain(self) -> None:
        if self._deflate is not None:
            self.writer.write(self._deflate.flush(zlib.Z_SYNC_FLUSH))
            self._deflate = None
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
        if self._pump is not None:
            self._pump.cancel()
        self.writer.close()

    async def wait_closed(self) -> None:
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (OSError, TimeoutError, ssl.SSLError):
            pass

    def abort(self) -> None:
        """Cut the connection now (shutdown, a broken stream), without a TLS goodbye."""
        self.writer.transport.abort()
