"""Mutated protocol commands for hypothesis, shared by the SMTP and POP3 fuzz tests: a
valid command with bytes flipped, cut, repeated or spliced with junk, or plain noise."""

from __future__ import annotations

import socket

from hypothesis import strategies as st

JUNK = [
    b"<",
    b">",
    b'"',
    b"\\",
    b":",
    b"=",
    b"@",
    b" ",
    b"\x00",
    b"\xff",
    b"\r",
    b"\xc3",
    b"9" * 12,
]


@st.composite
def mutated(draw, valid: list[bytes], junk: list[bytes] = JUNK) -> bytes:
    """One command line (no line end): usually a mutated valid one, sometimes noise."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200)).replace(b"\n", b" ")
    data = bytearray(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 10))]
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(junk))
        elif kind == "repeat":
            data[at:at] = data[at : at + 20] * draw(st.integers(2, 30))
    return bytes(data).replace(b"\n", b" ")


def sessions(valid: list[bytes], most: int = 6):
    """A whole session's worth of mutated commands."""
    return st.lists(mutated(valid), min_size=1, max_size=most)


def run_session(port: int, commands: list[bytes], goodbye: bytes) -> bytes:
    """Send a whole session in one go, then `goodbye`, and read every reply until the
    server closes (or a second passes without a byte: a command waiting for data or a
    response line that never comes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"".join(c + b"\r\n" for c in commands) + goodbye)
        sock.settimeout(1)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionError):
            pass
        return received
