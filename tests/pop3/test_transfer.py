"""The pure message encoder: CRLF line ends, dot-stuffing and TOP's cut, chunk by chunk."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.pop3.transfer import MessageEncoder


def encode(raw: bytes, chunk: int = 7, body_lines: int | None = None) -> bytes:
    encoder = MessageEncoder(body_lines)
    out = b""
    for start in range(0, len(raw), chunk):
        out += encoder.feed(raw[start : start + chunk])
    return out + encoder.finish()


def unstuff(wire: bytes) -> bytes:
    """What a client does (RFC 1939 §3): drop the terminator, undo the stuffed dots."""
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n"
    lines = wire[:-3].split(b"\r\n")[:-1]
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)


def test_it_stuffs_every_line_that_starts_with_a_dot():
    raw = b".first\r\nmiddle\r\n.\r\n..two\r\n"
    assert encode(raw) == b"..first\r\nmiddle\r\n..\r\n...two\r\n.\r\n"


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1000])
def test_a_crlf_or_dot_split_across_chunks_comes_out_the_same(chunk):
    raw = b"A: b\r\n\r\nx\r\n.y\r\n\r\n.\r\nz\r\n"
    assert encode(raw, chunk) == b"A: b\r\n\r\nx\r\n..y\r\n\r\n..\r\nz\r\n.\r\n"


def test_bare_line_feeds_become_crlf_and_a_missing_last_line_end_is_added():
    assert encode(b"A: b\n\n.x\nlast", chunk=3) == b"A: b\r\n\r\n..x\r\nlast\r\n.\r\n"


def test_an_empty_message_is_just_the_terminator():
    assert encode(b"") == b".\r\n"


def test_top_sends_the_header_the_blank_line_and_that_many_body_lines():
    raw = b"A: 1\r\nB: 2\r\n\r\none\r\n.two\r\nthree\r\n"
    assert encode(raw, body_lines=0) == b"A: 1\r\nB: 2\r\n\r\n.\r\n"
    assert encode(raw, body_lines=2, chunk=4) == b"A: 1\r\nB: 2\r\n\r\none\r\n..two\r\n.\r\n"
    assert encode(raw, body_lines=99) == encode(raw)


def test_top_finds_a_blank_line_split_across_chunks():
    raw = b"A: 1\r\n\r\nbody\r\nmore\r\n"
    for chunk in range(1, len(raw) + 1):
        assert encode(raw, chunk, body_lines=1) == b"A: 1\r\n\r\nbody\r\n.\r\n"


def test_top_of_a_message_without_a_header_is_its_first_lines():
    assert encode(b"\r\none\r\ntwo\r\n", body_lines=1) == b"\r\none\r\n.\r\n"


def test_top_says_when_the_rest_need_not_be_read():
    encoder = MessageEncoder(body_lines=1)
    encoder.feed(b"A: 1\r\n\r\nbody\r\n")
    assert encoder.done
    assert encoder.feed(b"never sent\r\n") == b""


@given(
    lines=st.lists(st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))),
    chunk=st.integers(min_value=1, max_value=64),
)
def test_a_client_gets_back_exactly_the_crlf_message_whatever_the_chunking(lines, chunk):
    raw = b"".join(line + b"\r\n" for line in lines)
    assert unstuff(encode(raw, chunk)) == raw
