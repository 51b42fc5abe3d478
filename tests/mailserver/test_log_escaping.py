"""Text a client sends reaches the log escaped: no raw control characters, so a client
can neither forge log lines (CR, LF) nor drive a terminal (ESC sequences)."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from tests.servers import RunningServer

EVIL = "\x1b[2J\x07FORGED\rline"


@pytest.fixture
def plain_listeners(transactional_db, settings):
    settings.ALLOW_PLAINTEXT_AUTH_LOOPBACK = True
    server = RunningServer(("smtp", "pop3")).start()
    yield server
    server.stop()


def configured_formatter() -> logging.Formatter:
    """The formatter of the server's log handler, as settings.LOGGING builds it."""
    logging_config: dict = settings.LOGGING
    spec = logging_config["formatters"]["plain"]
    return import_string(spec["()"])(spec["format"])


def send_lines(port: int, lines: list[bytes]) -> None:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        sock.makefile("rb") as reader,
    ):
        reader.readline()
        for line in lines:
            sock.sendall(line + b"\r\n")
            reader.readline()


def formatted_lines_mentioning(caplog, word: str, wait: float = 2.0) -> list[str]:
    formatter = configured_formatter()
    deadline = time.monotonic() + wait
    while True:
        found = [formatter.format(r) for r in caplog.records if word in r.getMessage()]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("listener", "lines"),
    [
        # aiosmtpd logs an unknown verb with %s, as the client sent it.
        ("smtp", [EVIL.encode()]),
        # A failed POP3 login names the user the client gave.
        ("pop3", [b"USER " + EVIL.encode() + "\u2028".encode(), b"PASS wrong"]),
    ],
)
def test_client_text_in_the_log_is_escaped(plain_listeners, caplog, listener, lines):
    caplog.set_level(logging.INFO)
    send_lines(plain_listeners.port(listener), lines)
    [line] = formatted_lines_mentioning(caplog, "FORGED")
    assert "\\x1b[2J\\x07FORGED\\r" in line
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c == "\u2028" for c in line)
