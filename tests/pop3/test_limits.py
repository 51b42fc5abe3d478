"""Limits, and what a confused or hostile client gets: -ERR, then the door; never a crash."""

from __future__ import annotations

import pytest

from apps.pop3 import replies
from tests.pop3.conftest import RawClient
from tests.servers import RunningServer


@pytest.mark.parametrize(
    "line",
    [b"", b"HELLO", b"\x00\x01\x02", b"\xff\xfe\xfd", b"RETR", b"LIST x", b"TOP 1", b"STAT 1 2"],
)
def test_garbage_gets_an_error_and_the_session_goes_on(raw_client, line):
    client = raw_client()
    assert client.command(line).startswith(b"-ERR")
    assert client.command(b"CAPA").startswith(b"+OK")
    assert client.multiline().endswith(b".\r\n")


def test_a_line_past_the_limit_is_refused_and_the_next_line_works(raw_client):
    client = raw_client()
    client.send(b"NOOP " + b"x" * (replies.LINE_LIMIT * 3) + b"\r\n")
    assert client.line() == b"-ERR Line too long\r\n"
    assert client.command(b"QUIT").startswith(b"+OK")


def test_too_many_bad_commands_close_the_connection(raw_client):
    client = raw_client()
    for _ in range(replies.MAX_BAD_COMMANDS - 1):
        assert client.command(b"BOGUS").startswith(b"-ERR Unknown command")
    assert client.command(b"BOGUS") == (replies.TOO_MANY_BAD_COMMANDS + "\r\n").encode()
    assert client.line() == b""


def test_an_idle_client_is_logged_out_without_a_word(raw_client, monkeypatch):
    monkeypatch.setattr(replies, "IDLE_TIMEOUT", 0.3)
    client = raw_client()
    assert client.line() == b""


def test_connections_past_the_per_ip_limit_are_refused_on_both_ports(live_personas, settings):
    settings.POP3_MAX_PER_IP = 2
    server = RunningServer(("pop3", "pop3s")).start()
    clients = []
    try:
        clients = [RawClient(server.port("pop3s")), RawClient(server.port("pop3"), tls=False)]
        assert all(client.greeting.startswith(b"+OK") for client in clients)
        clients.append(RawClient(server.port("pop3"), tls=False))
        assert clients[-1].greeting == (replies.TOO_MANY_CONNECTIONS + "\r\n").encode()
        clients[0].command(b"QUIT")
        clients.append(RawClient(server.port("pop3s")))
        assert clients[-1].greeting.startswith(b"+OK")
    finally:
        for client in clients:
            client.close()
        server.stop()
