"""The DATA decoder alone: however the stream is cut into reads, the body and the end are
the same (RFC 5321 §4.1.1.4 end of data, §4.5.2 transparency). The listener's own tests
send the same cases over sockets."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import given
from hypothesis import strategies as st

from apps.smtp.data import DataDecoder, Spool, read_piece

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


# Commands a client pipelined behind the data (RFC 2920 §3.1): the reader must leave them.
BEHIND = b"MAIL FROM:<next@example.org>\r\n"
# Where the end line meets what came before it: at the very start (an empty message),
# after lines ending in ".", after a dot-stuffed line, after a line as long as the buffer.
TRICKY_STREAMS = [
    b".\r\n",
    b"\r\n.\r\n",
    b"x\r\n.\r\n",
    b"..\r\n.\r\n",
    b"a.\r\nb.\r\n.\r\n",
    b"bare\n.\r\n.\r\n",
    b"cr\r.\r\n\r\n.\r\n",
    b"x" * 70_000 + b"\r\n.\r\n",
    STREAM,
]


def read_through(pieces: list[bytes]) -> tuple[bytes, bytes]:
    """Feed a real StreamReader the pieces one by one, as they come off a socket, and read
    the data from it with `read_piece`: (the body, what stayed in the reader)."""

    async def run() -> tuple[bytes, bytes]:
        reader = asyncio.StreamReader(limit=65536)  # as the listener's

        async def arrive() -> None:
            for piece in pieces:
                reader.feed_data(piece)
                await asyncio.sleep(0)
            reader.feed_eof()

        arriving = asyncio.create_task(arrive())
        spool = Spool(limit=10**6)
        try:
            decoder = DataDecoder(spool)
            while not decoder.done:
                decoder.feed(await read_piece(reader, decoder))
            await arriving
            return spool.read_all(), await reader.read()
        finally:
            spool.close()

    return asyncio.run(run())


@given(
    st.sampled_from(TRICKY_STREAMS),
    st.lists(st.integers(0, 70_100), max_size=8),
)
def test_reading_stops_at_the_end_line_wherever_the_reads_are_cut(stream, points):
    """RFC 5321 §4.1.1.4: CRLF "." CRLF ends the data, and only it; whatever follows is the
    client's next command."""
    data = stream + BEHIND
    expected, done = decode([stream])
    assert done
    assert read_through(cut(data, points)) == (expected, BEHIND)


def test_a_message_whose_lines_end_in_a_dot_is_read_in_two_pieces():
    text = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * 70

    async def count_pieces() -> int:
        reader = asyncio.StreamReader()
        reader.feed_data(text + b".\r\n" + BEHIND)
        spool = Spool(limit=10**6)
        decoder, pieces = DataDecoder(spool), 0
        while not decoder.done:
            decoder.feed(await read_piece(reader, decoder))
            pieces += 1
        spool.close()
        return pieces

    assert asyncio.run(count_pieces()) == 2
