"""Benchmark: SMTP accept rate and end-to-end delivery rate.

Starts `manage.py runmailserver` (embedded default: SQLite, its own Celery worker) in a
scratch data directory, then sends N messages of 4 KB over C concurrent SMTP sessions to
one local user. Prints messages accepted per second (250 after DATA) and messages visible
in the mailbox per second (filed by the pipeline), with the count that landed, and the
CPU time per message of the server and of its worker. One message goes through first,
untimed, so the clock starts with the worker up rather than still importing Django.

    .venv/bin/python bench/smtp_load.py [--messages 2000] [--sessions 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__" and not __package__:
    # Run as a file (`python bench/smtp_load.py`): start again as the module, with the
    # checkout importable (`apps`, `mailhost`, `tests`), as `python -m bench.smtp_load` is.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.getenv("PYTHONPATH")]))
    os.execv(sys.executable, [sys.executable, "-m", "bench.smtp_load", *sys.argv[1:]])

from bench.proctree import cpu_seconds  # noqa: E402
from tests.dnsserver import ZoneServer  # noqa: E402  (a real DNS server on loopback)

# 4 KB of text in 76-character lines, as mail clients wrap it.
_TEXT = ("The quick brown fox jumps over the lazy dog. " * 100)[:3900]
BODY = "\r\n".join(_TEXT[i : i + 76] for i in range(0, len(_TEXT), 76))


def manage(data_dir: str, *args: str) -> str:
    env = {**os.environ, "MAILHOST_DATA_DIR": data_dir}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def start_server(
    data_dir: str, dns: str, worker: bool, processes: int
) -> tuple[subprocess.Popen, int]:
    env = {
        **os.environ,
        "MAILHOST_DATA_DIR": data_dir,
        "MAILHOST_SMTP": "127.0.0.1:0",
        "MAILHOST_LOG_LEVEL": "WARNING",
        "MAILHOST_DNS_SERVERS": dns,
        "MAILHOST_PROCESSES": str(processes),
    }
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    for name in ("SUBMISSION", "SUBMISSIONS", "IMAP", "IMAPS", "POP3", "POP3S", "WEB", "HTTP"):
        env[f"MAILHOST_{name}"] = "off"
    env["MAILHOST_ACME"] = "off"  # a benchmark orders no certificates
    command = [sys.executable, "manage.py", "runmailserver"] + ([] if worker else ["--no-worker"])
    server = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert server.stdout is not None
    port = 0
    while True:
        line = server.stdout.readline()
        if not line:
            raise SystemExit("runmailserver exited")
        if match := re.match(r"listening: smtp\s+\S+:(\d+)", line):
            port = int(match.group(1))
        if line.startswith("worker: celery started") or (port and not worker):
            return server, port


async def send_session(port: int, count: int, session: int) -> int:
    """One SMTP session sending `count` messages, pipelining MAIL, RCPT and DATA (RFC 2920)
    the way MTAs do; a raw asyncio client keeps the load generator's own CPU small."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def replies(n: int) -> list[bytes]:
        got: list[bytes] = []
        while len(got) < n:
            line = await reader.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            if line[3:4] != b"-":
                got.append(line)
        return got

    await replies(1)
    writer.write(b"EHLO bench.client\r\n")
    await replies(1)
    for n in range(count):
        writer.write(b"MAIL FROM:<bench@sender.test>\r\nRCPT TO:<user@bench.test>\r\nDATA\r\n")
        codes = [r[:3] for r in await replies(3)]
        if codes != [b"250", b"250", b"354"]:
            raise RuntimeError(f"session {session}: {codes}")
        writer.write(
            f"From: bench@sender.test\r\nTo: user@bench.test\r\nSubject: load {session}/{n}\r\n"
            f"Message-ID: <{session}.{n}@bench>\r\n\r\n{BODY}\r\n.\r\n".encode()
        )
        [reply] = await replies(1)
        if not reply.startswith(b"250"):
            raise RuntimeError(f"session {session}: {reply!r}")
    writer.write(b"QUIT\r\n")
    await replies(1)
    writer.close()
    return count


async def send_all(port: int, sessions: int, per_session: int) -> int:
    counts = await asyncio.gather(*(send_session(port, per_session, s) for s in range(sessions)))
    return sum(counts)


def process_cpu(server_pid: int) -> dict[str, float]:
    """CPU seconds so far of the SMTP server and of its descendants (the worker, and any
    server processes it forked)."""
    family = cpu_seconds(server_pid)
    return {"server": family.pop(server_pid), "worker": sum(family.values())}


def warm_up(port: int, database: Path, worker: bool) -> int:
    """One message through, before the clock starts: a server that has been running
    (as Postfix and Dovecot are when they are measured), with its worker up and its
    caches warm, rather than one still starting. Returns the messages it left visible."""
    asyncio.run(send_session(port, 1, session=-1))
    deadline = time.monotonic() + 120
    while worker and visible(database) < 1:
        if time.monotonic() > deadline:
            raise SystemExit("the worker filed nothing within two minutes")
        time.sleep(0.05)
    return visible(database)


def visible(db_path: Path) -> int:
    with sqlite3.connect(db_path, timeout=30) as db:
        return db.execute("SELECT COUNT(*) FROM mailstore_message").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument(
        "--accept-only", action="store_true", help="no worker: measure SMTP acceptance alone"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="SMTP server processes (MAILHOST_PROCESSES)"
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailhost-smtp-bench-") as data_dir:
        manage(data_dir, "migrate", "--noinput")
        manage(data_dir, "domain", "add", "bench.test")
        manage(data_dir, "user", "add", "user@bench.test", "--quota", "0")
        # SPF, DKIM and DMARC lookups go to a DNS server on loopback (the sender's domain
        # publishes SPF), never to the internet.
        # Negative answers (no DMARC record) are cached for five minutes, as real zones say.
        zone = ZoneServer(
            'sender.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"', negative_ttl=300
        ).start()
        dns = ",".join(f"{host}:{port}" for host, port in zone.nameservers)
        server, port = start_server(
            data_dir, dns, worker=not options.accept_only, processes=options.processes
        )
        try:
            per_session = options.messages // options.sessions
            database = Path(data_dir) / "mailhost.sqlite3"
            warmed = warm_up(port, database, worker=not options.accept_only)
            cpu_before = process_cpu(server.pid)
            started = time.monotonic()
            sent = asyncio.run(send_all(port, options.sessions, per_session))
            accepted_after = time.monotonic() - started
            deadline = time.monotonic() + (0 if options.accept_only else 600)
            while (landed := visible(database) - warmed) < sent:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            delivered_after = time.monotonic() - started
            cpu = {name: process_cpu(server.pid)[name] - cpu_before[name] for name in cpu_before}
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(60)
            zone.stop()
    print(
        f"accepted:  {sent} messages in {accepted_after:.2f} s = "
        f"{sent / accepted_after:,.0f} msg/s ({options.sessions} sessions, 4 KB)"
    )
    print(
        f"delivered: {landed} of {sent} visible in INBOX after {delivered_after:.2f} s = "
        f"{landed / delivered_after:,.0f} msg/s"
    )
    print(
        "CPU per message: "
        + ", ".join(f"{name} {seconds / sent * 1000:.2f} ms" for name, seconds in cpu.items())
    )


if __name__ == "__main__":
    main()
