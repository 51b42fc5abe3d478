"""The DATA decoder alone: however the stream is cut into reads, the body and the end are
the same (RFC 5321 §4.1.1.4 end of data, §4.5.2 transparency). The listener's own tests
send the same cases over sockets."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from apps.smtp.data import DataDecoder, Spool

STREAM = (
    b"Subject: cuts\r\n\r\n..leading dot\r\nbare\n.\nlf and bare\r.\rcr\r\n"
    b"line ending in a dot.\r\n.\r\n"
)
BODY = (
    b"Subject: cuts\r\n\r\n.leading dot\r\nbare\n.\nlf and bare\r.\rcr\r\nline ending in a dot.\r\n"
)


def decode(pieces: list[bytes], hold: int = DataDecoder.HOLD) -> tuple[bytes, bool]:
    spool = Spool(limit=10**6)
    decoder = DataDecoder(spool)
    decoder.HOLD = hold
    for piece in pieces:
        if decoder.feed(piece):
            break
    try:
        return spool.read_all(), decoder.done
    finally:
        spool.close()


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *sorted(set(points)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


@given(st.lists(st.integers(0, len(STREAM)), max_size=12), st.sampled_from([2, 5, 65536]))
def test_any_cut_of_the_stream_gives_the_same_body(points, hold):
    assert decode(cut(STREAM, points), hold) == (BODY, True)


def test_an_empty_message_ends_at_once():
    assert decode([b".\r\n"]) == (b"", True)


def test_smuggled_ends_do_not_end_the_data():
    body, done = decode([b"a\n.\nb\r.\rc\r\n"])
    assert (body, done) == (b"a\n.\nb\r.\rc\r\n", False)


def test_an_endless_line_is_written_out_as_it_comes():
    spool = Spool(limit=10**7)
    decoder = DataDecoder(spool)
    for _ in range(100):
        decoder.feed(b"x" * 10_000)
    assert len(decoder.unfinished) <= DataDecoder.HOLD + 10_000
    decoder.feed(b"\r\n.\r\n")
    assert decoder.done and spool.read_all() == b"x" * 1_000_000 + b"\r\n"
    spool.close()
