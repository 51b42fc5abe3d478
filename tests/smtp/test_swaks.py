"""swaks, a real SMTP client, submits with AUTH over STARTTLS."""

from __future__ import annotations

import shutil
import subprocess

from tests.mailclient import wait_for_messages


def test_swaks_submits_with_auth_over_starttls(mailsystem, live_personas):
    alice, bob = live_personas["alice"], live_personas["bob"]
    assert shutil.which("swaks"), "swaks is installed by .ci/run (Debian package swaks)"
    result = subprocess.run(
        [
            "swaks",
            "--server",
            f"127.0.0.1:{mailsystem.port('submission')}",
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            alice.address,
            "--auth-password",
            alice.password,
            "--from",
            alice.address,
            "--to",
            bob.address,
            "--header",
            "Subject: from swaks",
            "--body",
            "Sent by swaks.",
            "--helo",
            "client.test",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "235 2.7.0 Authentication successful" in result.stdout
    assert "250 2.0.0 OK: queued as" in result.stdout
    [message] = wait_for_messages(bob.id, 1)
    assert message.subject == "from swaks"
