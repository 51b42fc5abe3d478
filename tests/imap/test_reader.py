"""The asyncio command reader over a real loopback socket: literals, limits and refusals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from apps.imap.parser import Login, parse_command
from apps.imap.reader import (
    CONTINUATION,
    LITERAL_MINUS_LIMIT,
    CommandRejected,
    ConnectionClosed,
    LineTooLong,
    MustDisconnect,
    read_command,
    read_line,
)

TIMEOUT = 5
DONE = b"* done\r\n"


@dataclass
class Server:
    """Reads commands in a loop like a session would, acknowledging each with "* done"."""

    limits: dict[str, Any]
    outcomes: list[object] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._loop(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.finished.set()

    async def _loop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                command = await read_command(reader, writer, **self.limits)
            except CommandRejected:
                self.outcomes.append("rejected")
                continue
            except (ConnectionClosed, MustDisconnect) as exc:
                self.outcomes.append(type(exc).__name__)
                return
            self.outcomes.append(command)
            writer.write(DONE)
            await writer.drain()


@dataclass
class Client:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), TIMEOUT)


@contextlib.asynccontextmanager
async def connected(**limits: Any) -> AsyncIterator[tuple[Client, Server]]:
    limits.setdefault("max_literal", 1000)
    server = Server(limits)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield Client(reader, writer), server
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        await asyncio.wait_for(server.finished.wait(), TIMEOUT)
        listener.close()
        await listener.wait_closed()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), TIMEOUT * 2))


# -- reading commands ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "command"),
    [
        (b"a1 NOOP\r\n", b"a1 NOOP"),
        (b"a1 NOOP\n", b"a1 NOOP"),
        (b"a1 LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n", b"a1 LOGIN {5+}\r\nalice {6+}\r\nsecret"),
        (b"a1 APPEND INBOX ~{3+}\r\na\x00b\r\n", b"a1 APPEND INBOX ~{3+}\r\na\x00b"),
        (b"a1 APPEND INBOX {2+}\nhi\r\n", b"a1 APPEND INBOX {2+}\r\nhi"),
        (b"a1 APPEND INBOX {0+}\r\n\r\n", b"a1 APPEND INBOX {0+}\r\n"),
    ],
    ids=["plain", "bare-lf", "literal-plus", "literal8", "bare-lf-marker", "empty-literal"],
)
def test_it_returns_commands_with_non_synchronising_literals_inline(
    sent: bytes, command: bytes
) -> None:
    async def scenario() -> None:
        async with connected() as (client, server):
            await client.send(sent)
            assert await client.line() == DONE  # no continuation request came first
            assert server.outcomes == [command]

    run(scenario)


def test_it_asks_for_each_synchronising_literal_and_the_parser_reads_the_result() -> None:
    async def scenario() -> None:
        async with connected() as (client, server):
            await client.send(b"a1 LOGIN {5}\r\n")
            assert await client.line() == CONTINUATION
            await client.send(b"alice {6}\r\n")
            assert await client.line() == CONTINUATION
            await client.send(b"secret\r\n")
            assert await client.line() == DONE
            (command,) = server.outcomes
            assert isinstance(command, bytes)
            assert parse_command(command).args == Login("alice", "secret")

    run(scenario)


def test_it_takes_literal_minus_literals_up_to_4096_octets_without_asking() -> None:
    async def scenario() -> None:
        async with connected(literal_plus_limit=LITERAL_MINUS_LIMIT, max_literal=10_000) as (
            client,
            server,
        ):
            body = b"x" * LITERAL_MINUS_LIMIT
            await client.send(b"a1 APPEND INBOX {4096+}\r\n" + body + b"\r\n")
            assert await client.line() == DONE
            assert server.outcomes == [b"a1 APPEND INBOX {4096+}\r\n" + body]

    run(scenario)


def test_it_closes_on_a_literal_minus_literal_over_4096_octets() -> None:
    async def scenario() -> None:
        async with connected(literal_plus_limit=LITERAL_MINUS_LIMIT, max_literal=10_000) as (
            client,
            server,
        ):
            await client.send(b"a1 APPEND INBOX {4097+}\r\n" + b"x" * 4097 + b"\r\n")
            assert (
                await client.line()
                == b"a1 BAD [TOOBIG] Non-synchronizing literal over 4096 octets\r\n"
            )
            assert (await client.line()).startswith(b"* BYE [TOOBIG] ")
            assert await client.line() == b""  # closed
            assert server.outcomes == ["MustDisconnect"]

    run(scenario)


def test_it_refuses_a_too_big_synchronising_literal_and_carries_on() -> None:
    async def scenario() -> None:
        async with connected(max_literal=100) as (client, server):
            await client.send(b"a1 APPEND INBOX {101}\r\n")
            assert await client.line() == b"a1 NO [TOOBIG] Literal too big\r\n"
            await client.send(b"a2 NOOP\r\n")
            assert await client.line() == DONE
            assert server.outcomes == ["rejected", b"a2 NOOP"]

    run(scenario)


def test_it_closes_on_a_too_big_non_synchronising_literal() -> None:
    async def scenario() -> None:
        async with connected(max_literal=100) as (client, server):
            await client.send(b"a1 APPEND INBOX {101+}\r\n" + b"x" * 101 + b"\r\n")
            assert await client.line() == b"a1 BAD [TOOBIG] Literal too big\r\n"
            assert await client.line() == b"* BYE [TOOBIG] Literal too big\r\n"
            assert await client.line() == b""
            assert server.outcomes == ["MustDisconnect"]

    run(scenario)


def test_it_refuses_more_literals_than_allowed() -> None:
    async def scenario() -> None:
        async with connected(max_literals=2) as (client, server):
            await client.send(b"a1 APPEND INBOX {1+}\r\na {1+}\r\nb {1}\r\n")
            assert await client.line() == b"a1 BAD Too many literals\r\n"
            await client.send(b"a2 NOOP\r\n")
            assert await client.line() == DONE
            assert server.outcomes == ["rejected", b"a2 NOOP"]

    run(scenario)


@pytest.mark.parametrize(
    "length",
    [101, 200_000],
    ids=["over-max-line", "over-the-stream-buffer"],
)
def test_it_answers_an_overlong_line_with_bad_and_stays_in_step(length: int) -> None:
    async def scenario() -> None:
        async with connected(max_line=100) as (client, server):
            line = b"t7 SEARCH " + b"X" * (length - 10)
            await client.send(line + b"\r\na2 NOOP\r\n")
            assert await client.line() == b"t7 BAD Command line too long\r\n"
            assert await client.line() == DONE
            assert server.outcomes == ["rejected", b"a2 NOOP"]

    run(scenario)


def test_it_closes_when_an_overlong_line_ends_in_a_non_synchronising_literal() -> None:
    async def scenario() -> None:
        async with connected(max_line=100) as (client, server):
            await client.send(b"t8 LOGIN " + b"X" * 200 + b" {5+}\r\nhello\r\n")
            assert await client.line() == b"t8 BAD Command line too long\r\n"
            assert (await client.line()).startswith(b"* BYE ")
            assert server.outcomes == ["MustDisconnect"]

    run(scenario)


def test_it_reports_a_client_that_hangs_up_inside_a_literal() -> None:
    async def scenario() -> None:
        async with connected() as (client, server):
            await client.send(b"a1 APPEND INBOX {10+}\r\nabc")
            client.writer.write_eof()
            await asyncio.wait_for(server.finished.wait(), TIMEOUT)
            assert server.outcomes == ["ConnectionClosed"]

    run(scenario)


def test_it_answers_with_an_untagged_bad_when_the_line_has_no_tag() -> None:
    async def scenario() -> None:
        async with connected(max_line=10) as (client, _server):
            await client.send(b"+" * 20 + b"\r\n")
            assert await client.line() == b"* BAD Command line too long\r\n"

    run(scenario)


# -- plain lines: IDLE DONE and AUTHENTICATE responses ------------------------------------


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (b"DONE\r\n", b"DONE"),
        (b"AGFsaWNlAHNlY3JldA==\r\n", b"AGFsaWNlAHNlY3JldA=="),
        (b"*\r\n", b"*"),
        (b"done {5}\r\n", b"done {5}"),
    ],
    ids=["idle-done", "sasl-response", "sasl-cancel", "no-literal-processing"],
)
def test_read_line_reads_one_plain_line(sent: bytes, expected: bytes) -> None:
    async def scenario() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(sent)
        assert await read_line(reader, max_line=100) == expected

    run(scenario)


def test_read_line_drops_an_overlong_line_and_keeps_the_next() -> None:
    async def scenario() -> None:
        reader = asyncio.StreamReader(limit=1024)
        reader.feed_data(b"x" * 5000 + b"\r\nDONE\r\n")
        with pytest.raises(LineTooLong):
            await read_line(reader, max_line=100)
        assert await read_line(reader, max_line=100) == b"DONE"
        reader.feed_eof()
        with pytest.raises(ConnectionClosed):
            await read_line(reader, max_line=100)

    run(scenario)
