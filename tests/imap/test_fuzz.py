"""Random and mutated commands (hypothesis): the server answers or closes, never dies,
never answers SERVERBUG nor names an internal exception, logs no traceback, and another
client keeps working throughout."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import mutated
from tests.imap.conftest import Raw, deliver, message, status
from tests.leaks import leaked, tracebacks

VALID = [
    b"NOOP",
    b"CAPABILITY",
    b'LIST "" *',
    b'LIST (SUBSCRIBED RECURSIVEMATCH) "" (INBOX Work/%) RETURN (CHILDREN STATUS (MESSAGES))',
    b"STATUS INBOX (MESSAGES UIDNEXT UNSEEN SIZE HIGHESTMODSEQ)",
    b"SELECT INBOX (CONDSTORE)",
    b"EXAMINE INBOX",
    b"FETCH 1:* (FLAGS UID ENVELOPE BODYSTRUCTURE RFC822.SIZE INTERNALDATE MODSEQ)",
    b"UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (Subject From)] BODY.PEEK[1.MIME]<0.10>)",
    b"FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1] BODY[TEXT] RFC822)",
    b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)",
    b"STORE 1 +FLAGS (\\Seen $Label)",
    b"UID STORE 1:* (UNCHANGEDSINCE 5) -FLAGS.SILENT (\\Flagged)",
    b"COPY 1 Archive",
    b"UID MOVE 2 Trash",
    b"EXPUNGE",
    b"UID EXPUNGE 1:3",
    b"APPEND INBOX (\\Seen) {20+}\r\nSubject: x\r\n\r\nhello!",
    b"CREATE Work/Fuzz",
    b"RENAME Work/Fuzz Work/Fuzzed",
    b"DELETE Work/Fuzzed",
    b"SUBSCRIBE Archive",
    b"GETQUOTAROOT INBOX",
    b"ENABLE QRESYNC UTF8=ACCEPT",
    b'ID ("name" "fuzz")',
    b"NAMESPACE",
    b"UNSELECT",
    b"CHECK",
]


# IMAP's own delimiters and literal markers, spliced into valid commands.
IMAP_JUNK = [
    b"(",
    b")",
    b"{5}",
    b"{999999999}",
    b"\\",
    b'"',
    b"*",
    b"~{3}",
    b"$",
    b"[",
    b"]",
    b"<1.2>",
    b"\x00",
    b" ",
]


def commands() -> st.SearchStrategy[bytes]:
    """A valid command, mutated: bytes flipped, cut, repeated or spliced with junk."""
    return mutated(VALID, IMAP_JUNK)


class Fuzzed:
    """A logged-in plaintext session that is reopened whenever the server closes it."""

    def __init__(self, server, persona) -> None:
        self.server, self.persona = server, persona
        self.raw: Raw | None = None

    def send(self, data: bytes) -> list[bytes]:
        raw = self.raw
        if raw is None:
            raw = self.raw = self.server.raw(self.persona, tls=False)
            raw.command("SELECT INBOX")
        raw.sock.settimeout(2)
        try:
            raw.send(b"fz " + data + b"\r\nzz NOOP\r\n")
            return raw.until_tagged("zz")
        except (TimeoutError, ConnectionError, OSError):
            # Closed by the server (BYE), or waiting for a literal we never send: both fine.
            with contextlib.suppress(OSError):
                raw.close()
            self.raw = None
            return []


@pytest.fixture
def fuzz_target(imap, alice, bob, settings):
    settings.ALLOW_PLAINTEXT_AUTH_LOOPBACK = True
    for n in range(1, 4):
        deliver(alice, message(n))
    watcher = imap.raw(bob)
    watcher.command("SELECT INBOX")
    return Fuzzed(imap, alice), watcher


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=commands())
def test_mutated_commands_never_break_the_server(fuzz_target, caplog, data):
    fuzzed, watcher = fuzz_target
    lines = fuzzed.send(data)
    assert not any(b"SERVERBUG" in line for line in lines), (data, lines)
    assert not any(leaked(line) for line in lines), (data, lines)
    assert not tracebacks(caplog.records), (data, caplog.text)
    assert status(watcher.command("NOOP")) == "OK"
