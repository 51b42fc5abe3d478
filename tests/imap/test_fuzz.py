"""Random and mutated commands (hypothesis): the server answers or closes, never dies,
never answers SERVERBUG nor names an internal exception, logs no traceback, and another
client keeps working throughout."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


@st.composite
def commands(draw) -> bytes:
    """A valid command, mutated: bytes flipped, cut, repeated or spliced with junk."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200)).replace(b"\n", b" ")
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 10))]
        elif kind == "insert":
            junk = draw(
                st.sampled_from(
                    [
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
                )
            )
            data[at:at] = junk
        elif kind == "repeat":
            data[at:at] = data[at : at + 20] * draw(st.integers(2, 30))
    return bytes(data).replace(b"\n", b" ")


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
