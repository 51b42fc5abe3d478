"""Limits (DESIGN "Every listener has limits"): line length, literal size, nesting depth,
commands per second, connections per IP and per user, failed logins, bad commands and the
autologout timer (RFC 9051 §5.4: at least 30 minutes once logged in)."""

from __future__ import annotations

import socket
import time

import pytest

from apps.accounts import throttle
from apps.imap import limits
from tests.imap.conftest import Imap, status
from tests.servers import RunningServer


@pytest.fixture
def configured(transactional_db, settings):
    """An IMAP server started after the test set `settings.IMAP_*`."""
    started: list[Imap] = []

    def start(**overrides) -> Imap:
        for name, value in overrides.items():
            setattr(settings, f"IMAP_{name.upper()}", value)
        running = Imap(RunningServer(("imap", "imaps")).start())
        started.append(running)
        return running

    yield start
    for running in started:
        running.close_all()
        running.server.stop()


def test_the_autologout_timer_is_at_least_thirty_minutes():
    assert limits.IDLE_TIMEOUT >= 30 * 60


def test_a_too_long_line_is_bad_and_the_session_goes_on(imap, alice):
    raw = imap.raw(alice)
    lines = raw.command(b"NOOP " + b"x" * (limits.MAX_LINE + 10))
    assert status(lines) == "BAD"
    assert status(raw.command("NOOP")) == "OK"


def test_deep_nesting_is_bad(imap, alice):
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    assert status(raw.command("SEARCH " + "(" * 300 + "ALL" + ")" * 300)) == "BAD"
    assert status(raw.command("SEARCH " + "NOT " * 300 + "ALL")) == "BAD"


def test_a_literal_before_login_is_small(imap):
    raw = imap.raw()
    raw.send(b"a LOGIN {100000}\r\n")
    assert raw.line().startswith(b"a NO [TOOBIG]")


def test_connections_per_ip_are_limited(configured):
    server = configured(max_per_ip=2)
    server.raw(), server.raw()
    sock = socket.create_connection(("127.0.0.1", server.port), 10)
    try:
        assert sock.recv(1024).startswith(b"* BYE [UNAVAILABLE]")
    finally:
        sock.close()


def test_connections_per_user_are_limited(configured, live_personas):
    alice = live_personas["alice"]
    server = configured(max_per_user=1)
    server.raw(alice)
    raw = server.raw()
    lines = raw.command(f'LOGIN "{alice.address}" "{alice.password}"')
    assert status(lines) == "NO [LIMIT]"
    # Another user is not affected.
    server.raw(live_personas["bob"])


def test_commands_per_second_are_paced(configured, live_personas):
    server = configured(commands_per_second=50, command_burst=5)
    raw = server.raw(live_personas["alice"])
    start = time.monotonic()
    for _ in range(30):
        raw.command("NOOP")
    assert time.monotonic() - start >= 0.4


def test_the_autologout_timer_ends_a_quiet_session(configured, live_personas):
    server = configured(idle_timeout=0.5)
    raw = server.raw(live_personas["alice"])
    raw.sock.settimeout(5)
    assert raw.line() == b"* BYE Autologout; idle for too long"


def test_idle_also_ends_at_the_autologout_timer(configured, live_personas):
    server = configured(idle_timeout=0.5)
    raw = server.raw(live_personas["alice"])
    raw.send(b"i IDLE\r\n")
    assert raw.line() == b"+ idling"
    raw.sock.settimeout(5)
    assert raw.line() == b"* BYE Autologout; idle for too long"


def test_an_unauthenticated_session_times_out_sooner(configured):
    server = configured(login_timeout=0.3)
    raw = server.raw()
    raw.sock.settimeout(5)
    assert raw.line().startswith(b"* BYE")


def test_too_many_bad_commands_end_the_session(configured):
    server = configured(max_bad_commands=3)
    raw = server.raw()
    for _ in range(3):
        raw.send(b"garbage\r\n")
    lines = [raw.line() for _ in range(4)]
    assert lines[-1].startswith(b"* BYE")


def test_failed_imap_logins_count_in_the_shared_throttle(imap, alice):
    """The throttle SMTP also uses (apps.accounts.throttle): failures from IMAP count there."""
    for _ in range(3):
        raw = imap.raw()
        raw.command(f'LOGIN "{alice.address}" "wrong"')
    assert throttle.check("127.0.0.1", alice.address).delay > 0
