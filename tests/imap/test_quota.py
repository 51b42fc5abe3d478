"""QUOTA (RFC 9208): GETQUOTAROOT, GETQUOTA, SETQUOTA and OVERQUOTA on APPEND and COPY."""

from __future__ import annotations

import pytest

from tests.imap.conftest import deliver, message, status


@pytest.fixture
def limited(alice):
    alice.user.quota_bytes = 10 * 1024
    alice.user.save()
    return alice


def test_getquotaroot_names_the_root_and_its_usage(imap, limited):
    """RFC 9208 §4.3: QUOTAROOT then QUOTA; STORAGE in units of 1024 octets (§5.1)."""
    deliver(limited, message(1))
    raw = imap.raw(limited)
    lines = raw.command("GETQUOTAROOT INBOX")
    assert lines[0] == b'* QUOTAROOT INBOX ""'
    assert lines[1] == b'* QUOTA "" (STORAGE 1 10)'


def test_getquota_of_the_root(imap, limited):
    raw = imap.raw(limited)
    assert raw.command('GETQUOTA ""')[0] == b'* QUOTA "" (STORAGE 0 10)'
    assert status(raw.command("GETQUOTA other")) == "NO [NONEXISTENT]"


def test_an_unlimited_user_has_no_quota_root(imap, alice):
    raw = imap.raw(alice)
    assert raw.command("GETQUOTAROOT INBOX")[0] == b"* QUOTAROOT INBOX"


def test_setquota_is_for_administrators(imap, limited):
    raw = imap.raw(limited)
    assert status(raw.command('SETQUOTA "" (STORAGE 100)')) == "NO [NOPERM]"


def test_append_over_quota_is_overquota(imap, limited):
    raw = imap.raw(limited)
    data = message(1, body="x" * 11000)
    lines = raw.command(b"APPEND INBOX {%d+}\r\n" % len(data) + data)
    assert status(lines) == "NO [OVERQUOTA]"


def test_copy_over_quota_is_overquota(imap, limited):
    deliver(limited, message(1, body="x" * 6000))
    raw = imap.raw(limited)
    raw.command("SELECT INBOX")
    assert status(raw.command("COPY 1 Archive")) == "NO [OVERQUOTA]"
    assert status(raw.command("MOVE 1 Archive")) == "OK"  # a move adds nothing
