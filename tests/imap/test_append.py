"""APPEND (RFC 9051 §6.3.12) with APPENDUID (RFC 4315), MULTIAPPEND (RFC 3502), LITERAL+
(RFC 7888), APPENDLIMIT / TOOBIG (RFC 7889), literal8 (RFC 3516) and UTF8 (RFC 6855)."""

from __future__ import annotations

import pytest

from apps.mailstore.models import Message
from tests.imap.conftest import message, status, untagged


def test_append_answers_appenduid_and_stores_flags(imap, alice):
    client = imap.login(alice)
    typ, data = client.append("Drafts", "(\\Draft $Label)", None, message(1))
    assert typ == "OK" and data[0].startswith(b"[APPENDUID ")
    client.select("Drafts")
    typ, data = client.fetch("1", "(FLAGS BODY.PEEK[])")
    assert b"FLAGS (\\Draft \\Recent $Label)" in data[0][0]  # RFC 3501 §6.3.11: new there
    assert data[0][1] == message(1)


def test_append_to_a_missing_mailbox_says_trycreate(imap, alice):
    raw = imap.raw(alice)
    data = message(1)
    lines = raw.command(b"APPEND Nowhere {%d+}\r\n" % len(data) + data)
    assert status(lines) == "NO [TRYCREATE]"


def test_synchronising_literal_gets_a_continuation(imap, alice):
    raw = imap.raw(alice)
    data = message(1)
    raw.send(b"a APPEND INBOX {%d}\r\n" % len(data))
    assert raw.line().startswith(b"+ ")
    raw.send(data + b"\r\n")
    assert raw.until_tagged("a")[-1].startswith(b"a OK [APPENDUID ")


def test_a_literal_over_appendlimit_is_toobig_before_it_is_sent(imap, alice, settings):
    """RFC 7889 §4: NO [TOOBIG] instead of the continuation."""
    raw = imap.raw(alice)
    raw.send(b"a APPEND INBOX {%d}\r\n" % (settings.MAX_MESSAGE_SIZE + 1))
    assert raw.line().startswith(b"a NO [TOOBIG]")
    assert status(raw.command("NOOP")) == "OK"


def test_multiappend_is_all_or_nothing(imap, alice):
    """RFC 3502 §3: several messages in one command; APPENDUID lists every UID."""
    raw = imap.raw(alice)
    one, two = message(1), message(2)
    lines = raw.command(
        b"APPEND INBOX (\\Seen) {%d+}\r\n%b {%d+}\r\n%b" % (len(one), one, len(two), two)
    )
    assert status(lines).startswith("OK [APPENDUID ")
    assert status(lines).endswith(" 1:2]")
    assert b"* 2 EXISTS" in raw.command("SELECT INBOX")


def test_multiappend_over_quota_appends_nothing(imap, alice):
    alice.user.quota_bytes = len(message(1)) + 10
    alice.user.save()
    raw = imap.raw(alice)
    one, two = message(1), message(2)
    lines = raw.command(b"APPEND INBOX {%d+}\r\n%b {%d+}\r\n%b" % (len(one), one, len(two), two))
    assert status(lines) == "NO [OVERQUOTA]"
    assert not Message.objects.filter(folder__user_id=alice.id).exists()


def test_binary_literal8_keeps_nul_octets(imap, alice):
    """RFC 3516 §4.4: APPEND with ~{n} may carry NUL."""
    raw = imap.raw(alice)
    data = b"From: a@example.org\r\nContent-Transfer-Encoding: binary\r\n\r\nA\x00B\r\n"
    lines = raw.command(b"APPEND INBOX ~{%d+}\r\n" % len(data) + data)
    assert status(lines).startswith("OK [APPENDUID")
    raw.command("SELECT INBOX")
    assert b"BINARY[1] ~{5}\r\nA\x00B\r\n" in raw.command("FETCH 1 BINARY.PEEK[1]")[0]


def test_utf8_append_needs_utf8_accept(imap, alice):
    """RFC 6855 §4: APPEND ... UTF8 (~{n}) only after ENABLE UTF8=ACCEPT."""
    raw = imap.raw(alice)
    data = "From: a@example.org\r\nSubject: Grüße\r\n\r\nx\r\n".encode()
    command = b"APPEND INBOX UTF8 (~{%d+}\r\n%b)" % (len(data), data)
    assert status(raw.command(command)) == "BAD"
    raw.command("ENABLE UTF8=ACCEPT")
    assert status(raw.command(command)).startswith("OK [APPENDUID")


def test_appending_to_the_selected_mailbox_announces_exists(imap, alice):
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    data = message(1)
    lines = raw.command(b"APPEND INBOX {%d+}\r\n" % len(data) + data)
    assert b"* 1 EXISTS" in lines
    assert untagged(lines, "EXISTS") == [b"* 1 EXISTS"]


def test_an_empty_message_is_refused(imap, alice):
    raw = imap.raw(alice)
    assert status(raw.command(b"APPEND INBOX {0+}\r\n")) == "NO [CANNOT]"


@pytest.mark.parametrize("date", ['"31-Feb-2025 10:00:00 +0000"', '"1-Jan-2025"', "yesterday"])
def test_bad_dates_are_bad(imap, alice, date):
    raw = imap.raw(alice)
    data = message(1)
    lines = raw.command(f"APPEND INBOX {date} {{{len(data)}+}}\r\n".encode() + data)
    assert status(lines) == "BAD"
