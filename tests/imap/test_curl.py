"""curl speaks IMAPS to us: it lists mailboxes and fetches a message by UID."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from django.conf import settings

from tests.imap.conftest import deliver, message

CURL = shutil.which("curl")

pytestmark = pytest.mark.skipif(CURL is None, reason="curl is not installed")


def _curl(imap, persona, path: str, *extra: str) -> bytes:
    assert CURL is not None, "curl is not installed"
    result = subprocess.run(
        [
            CURL,
            "--silent",
            "--show-error",
            "--cacert",
            str(settings.TLS_CERT_FILE),
            "--user",
            f"{persona.address}:{persona.password}",
            f"imaps://127.0.0.1:{imap.tls_port}/{path}",
            *extra,
        ],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_curl_lists_mailboxes(imap, alice):
    listing = _curl(imap, alice, "")
    assert b'* LIST (\\HasNoChildren) "/" INBOX' in listing
    assert b'"Sent"' in listing and b'"Junk"' in listing


def test_curl_fetches_a_message_by_uid(imap, alice):
    deliver(alice, message(1))
    uid = deliver(alice, message(2, body="The second one.\r\n"))
    assert _curl(imap, alice, f"INBOX;UID={uid}") == message(2, body="The second one.\r\n")


def test_curl_fetches_a_section(imap, alice):
    uid = deliver(alice, message(1))
    assert (
        _curl(imap, alice, f"INBOX;UID={uid}/;SECTION=TEXT")
        == b"Hello 1.\r\nThis is message 1.\r\n"
    )


def test_curl_runs_a_custom_command(imap, alice):
    deliver(alice, message(1))
    out = _curl(imap, alice, "", "--request", "EXAMINE INBOX")
    assert b"1 EXISTS" in out
