"""COMPRESS=DEFLATE (RFC 4978): after the tagged OK both directions are raw DEFLATE, and
every response is flushed whole."""

from __future__ import annotations

import zlib

from tests.imap.conftest import deliver, message, status


class Deflated:
    """Wraps a Raw client's socket in the RFC 4978 streams."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.out = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)
        self.buffer = b""

    def command(self, tag: str, text: bytes) -> list[bytes]:
        data = self.out.compress(tag.encode() + b" " + text + b"\r\n")
        self.raw.sock.sendall(data + self.out.flush(zlib.Z_SYNC_FLUSH))
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.raw.sock.recv(65536)
                assert chunk, "closed"
                self.buffer += self.inflate.decompress(chunk)
            line, _, self.buffer = self.buffer.partition(b"\r\n")
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines


def test_compress_deflate_carries_the_session_on(imap, alice):
    deliver(alice, message(1))
    raw = imap.raw(alice)
    assert status(raw.command("COMPRESS DEFLATE")) == "OK"
    assert raw.buffer == b""
    session = Deflated(raw)
    assert b"* 1 EXISTS" in session.command("a", b"SELECT INBOX")
    lines = session.command("b", b"FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)])")
    assert lines[0] == b"* 1 FETCH (BODY[HEADER.FIELDS (Subject)] {22}"
    assert lines[1] == b"Subject: Message 1"
    # RFC 4978 §3: a second COMPRESS is refused.
    assert session.command("c", b"COMPRESS DEFLATE")[-1].startswith(b"c NO [COMPRESSIONACTIVE]")


def test_compress_is_no_longer_advertised_once_active(imap, alice):
    raw = imap.raw(alice)
    raw.command("COMPRESS DEFLATE")
    lines = Deflated(raw).command("a", b"CAPABILITY")
    assert b"COMPRESS=DEFLATE" not in lines[0] and b"IMAP4rev2" in lines[0]


def test_idle_under_compression_flushes_each_update(imap, alice):
    raw = imap.raw(alice)
    raw.command("COMPRESS DEFLATE")
    session = Deflated(raw)
    session.command("a", b"SELECT INBOX")
    session.raw.sock.sendall(
        session.out.compress(b"i IDLE\r\n") + session.out.flush(zlib.Z_SYNC_FLUSH)
    )
    deliver(alice, message(1))
    buffer = b""
    raw.sock.settimeout(2)
    while b"EXISTS" not in buffer:
        buffer += session.inflate.decompress(raw.sock.recv(65536))
    assert b"+ idling\r\n* 1 EXISTS\r\n" in buffer


def test_an_unknown_mechanism_is_refused(imap, alice):
    raw = imap.raw(alice)
    assert status(raw.command("COMPRESS LZMA")) == "NO"
