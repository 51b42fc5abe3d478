"""`runmailserver` with MAILHOST_PROCESSES=2: two processes accept on the same ports, see
each other's changes through the store, both have the mail they accept filed at once,
count failed logins together, and both stop on SIGTERM to the first."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.dnsserver import ZoneServer
from tests.mailserver.test_make_run import ROOT, embedded_env, read_until

PASSWORD = "a long enough password"


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True
    )


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def serving_pid(client: socket.socket, pids: list[int]) -> int:
    """The server process holding the other end of `client`'s connection (by /proc)."""
    ours, server = client.getsockname()[1], client.getpeername()[1]
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        # The server's end: its port, ours as the remote one, ESTABLISHED (not an older
        # connection on the same client port, closing or in TIME_WAIT).
        if (int(local.split(":")[1], 16), int(remote.split(":")[1], 16), state) == (
            server,
            ours,
            "01",
        ):
            return next(pid for pid in pids if inode in socket_inodes(pid))
    raise AssertionError(f"no server socket for client port {ours}")


def greeted(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert client.recv(1024).startswith(b"* OK")
    return client


def fresh_client(port: int, pids: list[int], pid: int) -> socket.socket:
    """A new connection that process `pid` serves."""
    for _ in range(200):
        client = greeted(port)
        if serving_pid(client, pids) == pid:
            return client
        client.close()
    raise AssertionError(f"process {pid} took none of 200 connections")


def login(client: socket.socket, password: str) -> bytes:
    client.sendall(f'a LOGIN bob@example.org "{password}"\r\n'.encode())
    reply = b""
    while b"a " not in reply:
        reply += client.recv(1024)
    client.close()
    return reply


def smtp_sessions(port: int, pids: list[int]) -> dict[int, smtplib.SMTP]:
    """One SMTP session served by each process."""
    sessions: dict[int, smtplib.SMTP] = {}
    for _ in range(200):
        session = smtplib.SMTP("127.0.0.1", port, timeout=10)
        assert session.sock is not None
        pid = serving_pid(session.sock, pids)
        if pid in sessions:
            session.quit()
            continue
        sessions[pid] = session
        if len(sessions) == len(pids):
            return sessions
    raise AssertionError(f"200 SMTP connections reached only {sorted(sessions)}")


def inbox_messages(client: socket.socket) -> int:
    """STATUS INBOX (MESSAGES) as alice, on a greeted connection (then closed)."""
    client.sendall(
        f'a LOGIN alice@example.org "{PASSWORD}"\r\nb STATUS INBOX (MESSAGES)\r\n'.encode()
    )
    reply = b""
    while b"b OK" not in reply:
        reply += client.recv(4096)
    client.close()
    found = re.search(rb"MESSAGES (\d+)", reply)
    assert found, reply
    return int(found[1])


def filed_subjects(data_dir: Path, prefix: str) -> set[str]:
    """Subjects of the messages filed so far that start with `prefix` (read from the
    server's database itself: what the worker filed, whatever any IMAP session shows)."""
    with sqlite3.connect(data_dir / "mailhost.sqlite3", timeout=30) as db:
        rows = db.execute(
            "SELECT subject FROM mailstore_message WHERE subject LIKE ?", [prefix + "%"]
        )
        return {row[0] for row in rows}


def test_two_processes_share_the_listeners_and_each_others_changes(tmp_path):
    zone = ZoneServer('sender.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"').start()
    host, port = zone.nameservers[0]
    env = embedded_env(tmp_path) | {
        "MAILHOST_ALLOW_PLAINTEXT_AUTH_LOOPBACK": "1",
        "MAILHOST_PROCESSES": "2",
        "MAILHOST_DNS_SERVERS": f"{host}:{port}",
    }
    manage(env, "migrate", "--noinput")
    manage(env, "domain", "add", "example.org")
    manage(env, "user", "add", "alice@example.org", "--password", PASSWORD)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runmailserver"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    opened: list[socket.socket] = []
    rest = ""
    try:
        text = "\n".join(read_until(process, r"worker: celery started", timeout=120))
        announced = re.search(r"^processes: 2 \(pids (\d+) (\d+)\)$", text, re.M)
        listening = re.search(r"^listening: imap\s+127\.0\.0\.1:(\d+)$", text, re.M)
        assert announced and listening, text
        pids = [int(pid) for pid in announced.groups()]
        assert pids[0] == process.pid
        imap = int(listening.group(1))

        # The kernel hands each new connection to one of them: both get some.
        clients: dict[int, socket.socket] = {}
        while len(clients) < 2 and len(opened) < 200:
            client = greeted(imap)
            opened.append(client)
            clients.setdefault(serving_pid(client, pids), client)
        assert sorted(clients) == sorted(pids)

        # A session in one process IDLEs; an APPEND through the other reaches it.
        idler = clients[pids[0]]
        idler.sendall(f'a LOGIN alice@example.org "{PASSWORD}"\r\nb SELECT INBOX\r\n'.encode())
        seen = b""
        while b"b OK" not in seen:
            seen += idler.recv(4096)
        idler.sendall(b"c IDLE\r\n")
        assert idler.recv(1024).startswith(b"+ ")
        other = clients[pids[1]]
        other.sendall(f'a LOGIN alice@example.org "{PASSWORD}"\r\n'.encode())
        message = b"From: bob@example.org\r\nSubject: across\r\n\r\nHello.\r\n"
        other.sendall(b"b APPEND INBOX {%d+}\r\n%s\r\n" % (len(message), message))
        reply = b""
        while b"b OK" not in reply:
            reply += other.recv(4096)
        assert b"[APPENDUID" in reply
        started, news = time.monotonic(), b""
        while b"EXISTS" not in news:
            news += idler.recv(1024)
        assert b"* 1 EXISTS" in news and time.monotonic() - started < 3

        # Mail that either process accepts is filed within seconds: each process asks
        # the worker itself (the sweep would find a forgotten message only after 30 s).
        smtp = re.search(r"^listening: smtp\s+127\.0\.0\.1:(\d+)$", text, re.M)
        assert smtp, text
        for pid, session in smtp_sessions(int(smtp[1]), pids).items():
            mail = f"From: carol@sender.test\r\nSubject: via {pid}\r\n\r\nHi.\r\n"
            session.sendmail("carol@sender.test", ["alice@example.org"], mail)
            session.quit()
        expected = {f"via {pid}" for pid in pids}
        deadline = time.monotonic() + 20  # well before the sweep (30 s) would file them
        while (filed := filed_subjects(tmp_path, "via ")) != expected:
            assert time.monotonic() < deadline, f"filed {sorted(filed)} of {sorted(expected)}"
            time.sleep(0.2)
        # And a new session in either process counts them.
        for pid in pids:
            assert inbox_messages(fresh_client(imap, pids, pid)) == 3

        # Failed logins count across processes: after one in the first and two in the
        # second, a failure in the first is the fourth, answered after 2 s (throttle:
        # 3 free, then doubling from 1 s); counted there alone it would be the second.
        for pid, count in ((pids[0], 1), (pids[1], 2)):
            for _ in range(count):
                assert b"NO" in login(fresh_client(imap, pids, pid), "wrong password")
        started = time.monotonic()
        assert b"NO" in login(fresh_client(imap, pids, pids[0]), "wrong password")
        assert time.monotonic() - started >= 1.5
    finally:
        for client in opened:
            client.close()
        os.kill(process.pid, signal.SIGTERM)
        rest = process.communicate(timeout=60)[0]
        zone.stop()
    assert "stopped" in rest.splitlines()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)  # stopped and reaped
