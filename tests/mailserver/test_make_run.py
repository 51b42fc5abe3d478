"""`make run` on this checkout: migrates, prints an admin's credentials and every port,
serves, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LISTENERS = ("SMTP", "SUBMISSION", "SUBMISSIONS", "IMAP", "IMAPS", "POP3", "POP3S", "WEB", "HTTP")


def embedded_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["MAILHOST_DATA_DIR"] = str(data_dir)
    env.update({f"MAILHOST_{name}": "127.0.0.1:0" for name in LISTENERS})
    env["MAILHOST_ACME"] = "off"  # no certificate orders from a test's server
    return env


def read_until(process: subprocess.Popen, pattern: str, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"no {pattern!r} in:\n" + "\n".join(lines))


def test_make_run_starts_prints_credentials_and_ports_and_stops_on_sigterm(tmp_path):
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=embedded_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = read_until(process, r"worker: celery started", timeout=180)
        text = "\n".join(lines)
        assert re.search(r"^admin: admin@\S+$", text, re.M)
        assert re.search(r"^password: \S{12,}$", text, re.M)
        ports = dict(re.findall(r"^listening: (\w+)\s+127\.0\.0\.1:(\d+)$", text, re.M))
        assert "web" in ports
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['web']}/healthz", timeout=10) as r:
            assert r.status == 200
        assert (tmp_path / "tls" / "cert.pem").exists()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
    rest = process.communicate(timeout=60)[0]
    assert "stopped" in rest.splitlines()
