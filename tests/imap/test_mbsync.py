"""mbsync (isync) mirrors a 1,000-message account into a Maildir, and a second run after
changes on both sides converges: flags, deletions and new messages go both ways."""

from __future__ import annotations

import email
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings

from apps.mailstore import services, uidsets
from apps.mailstore.models import Folder, Message
from tests.imap.conftest import deliver, deliver_many, message

MBSYNC = shutil.which("mbsync")
COUNT = 1000

pytestmark = pytest.mark.skipif(MBSYNC is None, reason="mbsync (isync) is not installed")


def _config(tmp_path: Path, port: int, persona) -> Path:
    maildir = tmp_path / "mail"
    maildir.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(
        f"""IMAPAccount test
Host 127.0.0.1
Port {port}
User {persona.address}
Pass "{persona.password}"
SSLType IMAPS
CertificateFile {settings.TLS_CERT_FILE}
AuthMechs PLAIN

IMAPStore remote
Account test

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX Archive
Create Both
Expunge Both
SyncState *
"""
    )
    return config


def _run(config: Path) -> None:
    assert MBSYNC is not None, "mbsync is not installed"
    result = subprocess.run(
        [MBSYNC, "-c", str(config), "-a"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _local(maildir: Path) -> dict[str, str]:
    """Message-ID -> Maildir flags of every message in a Maildir folder."""
    found = {}
    for path in [*maildir.glob("cur/*"), *maildir.glob("new/*")]:
        parsed = email.message_from_bytes(path.read_bytes())
        flags = path.name.split(":2,")[1] if ":2," in path.name else ""
        found[parsed["Message-ID"]] = "".join(sorted(flags))
    return found


def _remote(persona, folder: str) -> dict[str, str]:
    rows = Message.objects.filter(folder__user_id=persona.id, folder__name=folder)
    return {
        m.message_id: "".join(sorted(("F" if m.flagged else "") + ("S" if m.seen else "")))
        for m in rows
        if not m.deleted
    }


def test_mbsync_mirrors_and_converges(imap, alice, tmp_path):
    for start in range(1, COUNT + 1, 250):
        deliver_many(alice, 250, start=start)
    config = _config(tmp_path, imap.tls_port, alice)
    inbox = tmp_path / "mail" / "INBOX"

    started = time.monotonic()
    _run(config)
    first_run = time.monotonic() - started
    assert len(_local(inbox)) == COUNT
    assert _local(inbox) == _remote(alice, "INBOX")

    # Server side: flag two, expunge one, deliver one.
    folder = Folder.objects.get(user_id=alice.id, name="INBOX")
    services.store_flags(alice.id, folder.pk, [(1, 2)], "add", ["\\Flagged", "\\Seen"])
    services.store_flags(alice.id, folder.pk, [(3, 3)], "add", ["\\Deleted"])
    services.expunge(alice.id, folder.pk, uidsets.to_ranges([3]))
    deliver(alice, message(5000))
    # Local side: read one, delete one, add one.
    files = sorted((inbox / "cur").glob("*")) + sorted((inbox / "new").glob("*"))
    by_id = {email.message_from_bytes(p.read_bytes())["Message-ID"]: p for p in files}
    read = by_id["<m10@example.org>"]
    read.rename(inbox / "cur" / (read.name.split(":2,")[0] + ":2,S"))
    by_id["<m11@example.org>"].unlink()
    (inbox / "new" / "1700000000.local.host").write_bytes(message(6000))

    _run(config)
    local, remote = _local(inbox), _remote(alice, "INBOX")
    assert local == remote
    assert len(local) == COUNT - 2 + 2
    assert local["<m1@example.org>"] == "FS" and local["<m10@example.org>"] == "S"
    assert "<m3@example.org>" not in local and "<m11@example.org>" not in local
    assert "<m5000@example.org>" in local and "<m6000@example.org>" in remote
    assert first_run < 60
