"""Whole SMTP sessions of random and mutated commands (hypothesis) against a real
listener: the server answers or closes, never names an internal exception in a reply
(RFC 5321 §4.2: replies are codes and text, nothing else), logs no traceback, and another
client keeps being served throughout."""

from __future__ import annotations

import socket

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fuzzing import run_session, sessions
from tests.leaks import leaked, tracebacks
from tests.servers import RunningServer

VALID = [
    b"EHLO client.test",
    b"HELO client.test",
    b"MAIL FROM:<someone@remote.test> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=x+2By",
    b"MAIL FROM:<> SMTPUTF8",
    b"RCPT TO:<alice@example.org> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;alice@example.org",
    b'RCPT TO:<"a b"@example.org>',
    b"RCPT TO:<bob+tag@example.org>",
    b"DATA",
    b"BDAT 5 LAST",
    b"BDAT 0",
    b"RSET",
    b"NOOP",
    b"VRFY <alice@example.org>",
    b"EXPN staff",
    b"HELP MAIL",
    b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHdyb25n",
    b"AUTH LOGIN YWxpY2U=",
    b"STARTTLS",
    b"QUIT",
]
# After the session: end a DATA that may be open, then leave.
GOODBYE = b".\r\nQUIT\r\n"


class Watcher:
    """A second client that must keep getting answers while the fuzzing goes on."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = self.sock.makefile("rb")
        assert self.reader.readline().startswith(b"220")

    def noop(self) -> bytes:
        self.sock.sendall(b"NOOP\r\n")
        return self.reader.readline()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def fuzz_target(transactional_db, live_personas, settings):
    settings.ALLOW_PLAINTEXT_AUTH_LOOPBACK = True  # AUTH is reachable on port 25 too
    server = RunningServer(("smtp",)).start()
    watcher = Watcher(server.port("smtp"))
    yield server.port("smtp"), watcher
    watcher.close()
    server.stop()


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(commands=sessions(VALID), greet=st.booleans())
@example(commands=[b'VRFY "'], greet=False)  # what outside fuzzing found first
@example(commands=[b"STARTTLS", b"\x00\xff garbage"], greet=True)
def test_mutated_sessions_never_break_the_server(fuzz_target, caplog, commands, greet):
    port, watcher = fuzz_target
    received = run_session(port, [b"EHLO fuzz.test", *commands] if greet else commands, GOODBYE)
    assert received.startswith(b"220 "), received
    assert not leaked(received), (commands, received)
    assert not tracebacks(caplog.records), (commands, caplog.text)
    assert watcher.noop().startswith(b"250"), commands
