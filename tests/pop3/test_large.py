"""RETR of a 50 MB message streams: the bytes on the wire are right and the server never
holds more than a few chunks of them."""

from __future__ import annotations

import hashlib
import tracemalloc

from tests.pop3.conftest import RawClient, deliver

SIZE = 50 * 1024 * 1024
LINE = b"0123456789" * 7 + b"\r\n"
DOT_LINE = b".starts with a dot" + b"-" * 52 + b"\r\n"


def big_message() -> bytes:
    header = b"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: big\r\n\r\n"
    block = LINE * 99 + DOT_LINE
    return header + block * ((SIZE - len(header)) // len(block))


def test_retr_streams_a_50_mb_message_without_holding_it_in_memory(pop3, alice):
    raw = big_message()
    deliver(alice, raw)
    wire = f"+OK {len(raw)} octets\r\n".encode() + raw.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    expected = hashlib.sha256(wire).hexdigest()
    wire_length = len(wire)
    del wire
    client = RawClient(pop3.tls_port)
    client.login(alice)
    tracemalloc.start()
    try:
        client.send(b"RETR 1\r\n")
        digest, received = hashlib.sha256(), 0
        while received < wire_length:
            chunk = client.file.read1(1 << 20)
            assert chunk, "connection closed early"
            digest.update(chunk)
            received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == wire_length and digest.hexdigest() == expected
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes while sending {len(raw)}"
    assert client.command(b"QUIT").startswith(b"+OK")
    client.close()
