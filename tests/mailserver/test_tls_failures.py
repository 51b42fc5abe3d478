"""A client that sends garbage where a TLS handshake belongs (after STARTTLS or STLS, or
on an implicit-TLS port) is routine on the internet: it costs one INFO line naming the
peer and the TLS error, never an ERROR with a traceback. RFC 3207 §4 (SMTP STARTTLS),
RFC 9051 §6.2.1 (IMAP STARTTLS), RFC 2595 §4 (POP3 STLS), RFC 8314 §3.3 (implicit TLS)."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from tests.leaks import tracebacks
from tests.servers import RunningServer

GARBAGE = b"HELO garbage\r\n\x00\xff" * 20


@pytest.fixture
def tls_listeners(transactional_db):
    server = RunningServer(("smtp", "submissions", "imap", "imaps", "pop3", "pop3s")).start()
    yield server
    server.stop()


def handshake_lines(caplog, wait: float = 3.0) -> list[logging.LogRecord]:
    deadline = time.monotonic() + wait
    while True:
        found = [r for r in caplog.records if "TLS handshake" in r.getMessage()]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def upgrade_to_tls(sock: socket.socket, lines: list[bytes]) -> bool:
    """Read the greeting, send `lines`; whether the last reply says to start TLS."""
    with sock.makefile("rb") as reader:
        reader.readline()
        for line in lines:
            sock.sendall(line + b"\r\n")
            reply = reader.readline()
            while reply[3:4] == b"-":
                reply = reader.readline()
    return reply.startswith((b"220", b"+OK", b"a OK"))


@pytest.mark.parametrize(
    ("listener", "upgrade", "logger"),
    [
        ("smtp", [b"EHLO client.test", b"STARTTLS"], "apps.smtp.server"),
        ("submissions", [], "apps.smtp.server"),
        ("imap", [b"a STARTTLS"], "apps.imap.connection"),
        ("imaps", [], "apps.imap.connection"),
        ("pop3", [b"STLS"], "apps.pop3.connection"),
        ("pop3s", [], "apps.pop3.connection"),
    ],
)
def test_garbage_instead_of_a_tls_handshake_logs_one_info_line(
    tls_listeners, caplog, listener, upgrade, logger
):
    caplog.set_level(logging.INFO)
    with socket.create_connection(("127.0.0.1", tls_listeners.port(listener)), 10) as sock:
        if upgrade:
            assert upgrade_to_tls(sock, upgrade)
        sock.sendall(GARBAGE)
        sock.settimeout(10)
        while sock.recv(4096):  # the server closes the connection
            pass
    [record] = handshake_lines(caplog)
    assert record.name == logger and record.levelno == logging.INFO
    assert "127.0.0.1" in record.getMessage() and "WRONG_VERSION_NUMBER" in record.getMessage()
    assert not tracebacks(caplog.records)
