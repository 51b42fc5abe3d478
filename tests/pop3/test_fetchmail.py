"""Real clients: fetchmail downloads with and without `keep`, curl lists and retrieves."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from tests.pop3.conftest import deliver, inbox_uids, message

pytestmark = pytest.mark.skipif(
    not (shutil.which("fetchmail") and shutil.which("curl")), reason="needs fetchmail and curl"
)
MDA = '#!/bin/sh\ncat > "{folder}/msg-$$"\n'


class Fetchmail:
    """fetchmail with its own home (the .fetchids UIDL memory) and an MDA that files each
    message it hands over as a file."""

    def __init__(self, home: Path, persona) -> None:
        self.home = home
        self.persona = persona
        self.delivered = home / "delivered"
        self.delivered.mkdir()
        self.mda = home / "mda.sh"
        self.mda.write_text(MDA.format(folder=self.delivered))
        self.mda.chmod(0o700)

    def run(self, port: int, options: str) -> int:
        rcfile = self.home / "fetchmailrc"
        rcfile.write_text(
            "set no syslog\nset invisible\n"
            f"poll 127.0.0.1 proto pop3 port {port}\n"
            f'  user "{self.persona.address}" password "{self.persona.password}" is "me" here\n'
            f'  {options} no sslcertck mda "{self.mda}"\n'
        )
        rcfile.chmod(0o600)
        result = subprocess.run(
            ["fetchmail", "--nodetach", "-f", str(rcfile)],
            env={**os.environ, "FETCHMAILHOME": str(self.home)},
            capture_output=True,
            timeout=60,
        )
        assert result.returncode in (0, 1), result.stderr.decode()  # 1: no new mail
        return result.returncode

    def take(self) -> list[bytes]:
        """What the MDA filed since last asked, in any order; then forget it."""
        files = sorted(self.delivered.iterdir())
        contents = sorted(path.read_bytes() for path in files)
        for path in files:
            path.unlink()
        return contents


def as_delivered(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")  # fetchmail hands an MDA Unix line ends


def test_fetchmail_keeps_then_downloads_the_new_and_flushes_the_old(pop3, alice, tmp_path):
    fetchmail = Fetchmail(tmp_path, alice)
    first = [message(n) for n in (1, 2, 3)]
    uids = [deliver(alice, raw) for raw in first]

    assert fetchmail.run(pop3.port, 'keep sslproto "TLS1.2+"') == 0
    assert fetchmail.take() == sorted(as_delivered(raw) for raw in first)
    assert inbox_uids(alice) == uids

    newest = message(4)
    deliver(alice, newest)
    assert fetchmail.run(pop3.tls_port, "no keep flush ssl") == 0
    assert fetchmail.take() == [as_delivered(newest)]  # UIDL told it the rest were seen
    assert inbox_uids(alice) == []

    assert fetchmail.run(pop3.port, 'no keep sslproto "TLS1.2+"') == 1
    assert fetchmail.take() == []


def curl(url: str, persona, *options: str) -> bytes:
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--cacert",
            str(settings.TLS_CERT_FILE),
            *options,
            url,
            "-u",
            f"{persona.address}:{persona.password}",
        ],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_curls_list_agrees_with_the_store(pop3, alice):
    for n in range(1, 6):
        deliver(alice, message(n))
    listing = curl(f"pop3://127.0.0.1:{pop3.port}/", alice, "--ssl-reqd")
    assert len(listing.splitlines()) == len(inbox_uids(alice)) == 5
    pop3.login_when_free(alice).quit()  # curl leaves without QUIT; wait for the lock
    listing = curl(f"pop3s://127.0.0.1:{pop3.tls_port}/", alice)
    assert len(listing.splitlines()) == 5


def test_curl_retrieves_a_message_byte_for_byte(pop3, alice):
    raw = message(1, ".starts with a dot\r\n.\r\nend\r\n")
    deliver(alice, raw)
    assert curl(f"pop3s://127.0.0.1:{pop3.tls_port}/1", alice) == raw
