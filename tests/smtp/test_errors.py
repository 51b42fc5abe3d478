"""What a client sees when SMTP cannot serve a command: a plain reply, never an internal
exception's name; and the log gets one record with the traceback.

RFC 5321 §4.2.1 (reply codes), RFC 3463 (enhanced status codes: 4.3.0 and 5.5.0 are the
"other" statuses), RFC 5321 §3.5.3 (VRFY may answer 252).
"""

from __future__ import annotations

import base64
import logging
import socket
import time

import pytest

from tests.leaks import leaked, tracebacks
from tests.servers import RunningServer


@pytest.fixture
def smtp_server(transactional_db):
    server = RunningServer(("smtp", "submission")).start()
    yield server
    server.stop()


def converse(port: int, lines: list[bytes]) -> list[bytes]:
    """Send each line and read its one-line (or last-of-multiline) reply."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        sock.makefile("rb") as reader,
    ):
        replies = [reader.readline()]
        for line in lines:
            sock.sendall(line + b"\r\n")
            reply = reader.readline()
            while reply[3:4] == b"-":
                reply = reader.readline()
            replies.append(reply)
        return replies[1:]


def records_from(caplog, logger: str, wait: float = 2.0) -> list[logging.LogRecord]:
    """The server's records from `logger` (the server thread may log just after replying)."""
    deadline = time.monotonic() + wait
    while True:
        found = [r for r in caplog.records if r.name == logger]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


@pytest.mark.parametrize("argument", [b'"', b'"\\', b'<"@>', b"postmaster", b"<a@b> x y"])
def test_vrfy_answers_252_to_anything_and_never_names_an_exception(smtp_server, caplog, argument):
    # aiosmtpd's address parser raised IndexError on a lone quote, and the client saw it.
    [reply] = converse(smtp_server.port("smtp"), [b"VRFY " + argument])
    assert reply.startswith(b"252 2.5.2 "), reply
    assert not tracebacks(caplog.records)


def test_vrfy_without_an_argument_is_a_syntax_error(smtp_server):
    assert converse(smtp_server.port("smtp"), [b"VRFY"])[0].startswith(b"501 5.5.4 ")


def test_an_unexpected_failure_outside_a_transaction_gets_500_5_5_0(
    smtp_server, live_personas, settings, caplog
):
    # A broken setting stands in for a bug: the rate check fails with a TypeError.
    settings.ALLOW_PLAINTEXT_AUTH_LOOPBACK = True
    settings.SUBMISSION_RATE_PER_HOUR = None
    alice = live_personas["alice"]
    plain = base64.b64encode(f"\0{alice.address}\0{alice.password}".encode())
    replies = converse(
        smtp_server.port("submission"),
        [b"EHLO client.test", b"AUTH PLAIN " + plain, f"MAIL FROM:<{alice.address}>".encode()],
    )
    assert replies[1].startswith(b"235")
    assert replies[2].startswith(b"500 5.5.0 "), replies
    assert not leaked(replies[2])
    [record] = records_from(caplog, "apps.smtp.server")
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_an_unexpected_failure_inside_a_transaction_gets_451_4_3_0(
    smtp_server, live_personas, settings, caplog
):
    # The spool compares sizes with the limit; a broken limit fails mid-BDAT (RFC 3030).
    settings.RELAY_FROM_LOOPBACK = True
    settings.MAX_MESSAGE_SIZE = None
    bob = live_personas["bob"]
    replies = converse(
        smtp_server.port("smtp"),
        [
            b"EHLO client.test",
            b"MAIL FROM:<someone@remote.test>",
            f"RCPT TO:<{bob.address}>".encode(),
            b"BDAT 4 LAST\r\nbody",
        ],
    )
    assert [r[:3] for r in replies[:3]] == [b"250", b"250", b"250"]
    assert replies[3].startswith(b"451 4.3.0 "), replies
    assert not leaked(replies[3])
    [record] = records_from(caplog, "apps.smtp.server")
    assert record.exc_info is not None
