"""Whole POP3 sessions of random and mutated commands (hypothesis) against a real
listener: the server answers or closes, never names an internal exception in a reply
(RFC 1939 §3: a status indicator and text), logs no traceback, and another client keeps
being served throughout."""

from __future__ import annotations

import socket

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fuzzing import run_session, sessions
from tests.leaks import leaked, tracebacks
from tests.pop3.conftest import deliver, message
from tests.servers import RunningServer

VALID = [
    b"CAPA",
    b"STAT",
    b"LIST",
    b"LIST 1",
    b"UIDL",
    b"UIDL 2",
    b"RETR 1",
    b"TOP 2 1",
    b"DELE 3",
    b"RSET",
    b"NOOP",
    b"USER alice@example.org",
    b"PASS wrong",
    b"AUTH",
    b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHdyb25n",
    b"APOP alice@example.org c4c9334bac560ecc979e58001b3e22fb",
    b"STLS",
    b"QUIT",
]
GOODBYE = b"QUIT\r\n"


class Watcher:
    """Bob, logged in on a second connection, who must keep getting answers."""

    def __init__(self, port: int, persona) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = self.sock.makefile("rb")
        assert self.reader.readline().startswith(b"+OK")
        assert self.command(b"USER " + persona.address.encode()).startswith(b"+OK")
        assert self.command(b"PASS " + persona.password.encode()).startswith(b"+OK")

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reader.readline()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def fuzz_target(transactional_db, live_personas, settings):
    settings.ALLOW_PLAINTEXT_AUTH_LOOPBACK = True  # USER/PASS and AUTH without TLS
    alice, bob = live_personas["alice"], live_personas["bob"]
    for n in range(1, 6):
        deliver(alice, message(n), kept_in="database" if n % 2 else "file")
    server = RunningServer(("pop3",)).start()
    watcher = Watcher(server.port("pop3"), bob)
    login = [b"USER " + alice.address.encode(), b"PASS " + alice.password.encode()]
    yield server.port("pop3"), login, watcher
    watcher.close()
    server.stop()


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(commands=sessions(VALID), logged_in=st.booleans())
@example(commands=[b"STLS", b"\x16\x03\x01\x00\x05hello garbage"], logged_in=False)
@example(commands=[b"USER \x1b[2J\x00 x", b"PASS wrong"], logged_in=False)  # a cache key
def test_mutated_sessions_never_break_the_server(fuzz_target, caplog, commands, logged_in):
    port, login, watcher = fuzz_target
    received = run_session(port, [*login, *commands] if logged_in else commands, GOODBYE)
    assert received.startswith(b"+OK "), received
    assert not leaked(received), (commands, received)
    assert not tracebacks(caplog.records), (commands, caplog.text)
    assert watcher.command(b"NOOP").startswith(b"+OK"), commands
