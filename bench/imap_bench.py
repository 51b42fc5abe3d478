"""Benchmark: IMAP on a folder of 100,000 messages, a mixed load of 10 clients, a
login-heavy cycle over IMAPS, and the memory of idle connections.

    .venv/bin/python bench/imap_bench.py [--messages 100000] [--clients 10] [--seconds 30]
        [--idle 1000] [--data-dir /tmp/imap-bench] [--processes N]
        [--only folder,mixed,cycle,idle] [--against HOST:PORT:TLSPORT:PID]

The data directory is kept between runs: the big folder is built once (a few minutes;
2,000 distinct messages, each filed 50 times, so blobs stay few) and reused. The server
is its own process: `runmailserver` with only the IMAP listeners (and, for the idle
section, POP3S and submission) on 127.0.0.1, plaintext LOGIN allowed from loopback and
the connection limits raised for the idle test. Clients are asyncio sockets in this
process.

Reported (each section on its own with --only):
- folder: SELECT (the first ever, from the index file the worker keeps; the first with
  the file lost; the first after a restart; warm), UID FETCH 1:* (FLAGS), the same with
  CHANGEDSINCE, FETCH of 50 ENVELOPEs, STATUS, UID SEARCH on a header and on body text,
  EXPUNGE of one message (median of 5 runs each);
- mixed: plain IMAP, sessions of weighted random commands, in commands per second;
- cycle: what a phone does when it wakes, over IMAPS, back to back: connect with a full
  TLS handshake, LOGIN, SELECT, FETCH of the newest 20, STORE, APPEND, STORE \\Deleted,
  EXPUNGE, LOGOUT; cycles and commands per second, CPU per command, latency per command;
- idle: memory (PSS of the server's process tree) per idle IDLE connection over IMAP,
  IMAPS and IMAPS with COMPRESS=DEFLATE, and how long a new message takes to reach all of
  them; then per idle POP3S session and per SMTP session after STARTTLS.
--against runs the cycle and idle sections against another server: see
bench/dovecot_reference.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import re
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__" and not __package__:
    # Run as a file (`python bench/imap_bench.py`): start again as the module, with the
    # checkout importable (`apps`, `mailhost`, `tests`), as `python -m bench.imap_bench` is.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.getenv("PYTHONPATH")]))
    os.execv(sys.executable, [sys.executable, "-m", "bench.imap_bench", *sys.argv[1:]])

from bench.proctree import cpu_seconds  # noqa: E402

PASSWORD = "bench-password"
BIG = "big@bench.test"
IDLE_USER = "idle@bench.test"
LOAD_MESSAGES = 500
TEMPLATES = 2000
_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")

SERVER = """
import os, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
import django
django.setup()
from django.conf import settings
settings.IMAP_MAX_PER_IP = settings.IMAP_MAX_PER_USER = settings.IMAP_MAX_CONNECTIONS = 100000
settings.POP3_MAX_PER_IP = settings.POP3_MAX_CONNECTIONS = 100000
settings.SMTP_MAX_PER_IP = settings.SMTP_MAX_CONNECTIONS = 100000
settings.IMAP_COMMANDS_PER_SECOND = settings.IMAP_COMMAND_BURST = 1e9
from django.core.management import call_command
call_command("runmailserver", "--no-worker")
"""


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def environment(data_dir: Path, port: int, tls_port: int | None) -> dict[str, str]:
    env = {**os.environ, "MAILHOST_DATA_DIR": str(data_dir)}
    env["DJANGO_SETTINGS_MODULE"] = "mailhost.settings"
    for name in ("SMTP", "SUBMISSION", "SUBMISSIONS", "POP3", "POP3S", "WEB", "HTTP"):
        env[f"MAILHOST_{name}"] = "off"

    env["MAILHOST_ACME"] = "off"  # a benchmark orders no certificates
    env["MAILHOST_IMAP"] = f"127.0.0.1:{port}"
    env["MAILHOST_IMAPS"] = f"127.0.0.1:{tls_port}" if tls_port else "off"
    env["MAILHOST_ALLOW_PLAINTEXT_AUTH_LOOPBACK"] = "1"
    env["MAILHOST_LOG_LEVEL"] = "WARNING"
    return env


# -- the data set ------------------------------------------------------------------------------


def message(n: int, to: str) -> bytes:
    return (
        f"From: Sender {n % 97} <sender{n % 97}@example.net>\r\nTo: {to}\r\n"
        f"Subject: Report {n} token{n}\r\nMessage-ID: <{n}.{to}@bench>\r\n"
        f"Date: Mon, 30 Nov 2026 12:00:00 +0000\r\n\r\n"
        + f"word{n} lorem ipsum dolor sit amet, consectetur adipiscing elit\r\n"
        * 40
    ).encode()


def build(data_dir: Path, messages: int, clients: int) -> None:
    """Users and mail, unless the data directory already has them."""
    os.environ.update(MAILHOST_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="mailhost.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from apps.accounts import services as accounts
    from apps.accounts.models import Domain, User
    from apps.mailstore import services
    from apps.mailstore.models import Message

    call_command("migrate", verbosity=0)
    Domain.objects.get_or_create(name="bench.test")
    wanted = {BIG: messages, IDLE_USER: 20}
    wanted.update({f"load{i}@bench.test": LOAD_MESSAGES for i in range(clients)})
    for address, count in wanted.items():
        user = User.objects.filter(email=address).first() or accounts.create_user(
            address, PASSWORD, quota_bytes=0
        )
        have = Message.objects.filter(folder__user=user, folder__name="INBOX").count()
        if have >= count:
            continue
        started = time.monotonic()
        distinct = min(count, TEMPLATES)
        templates = [services.NewMessage.from_bytes(message(n, address)) for n in range(distinct)]
        for start in range(have, count, 2000):
            numbers = range(start, min(count, start + 2000))
            services.deliver_many([(templates[n % distinct], [user.pk]) for n in numbers])
        print(
            f"  filed {count - have} messages for {address} in {time.monotonic() - started:.0f} s"
        )


# -- a small client ----------------------------------------------------------------------------


LATENCY: dict[str, list[float]] = {}  # command name -> seconds, for the mixed load


@functools.cache
def client_tls() -> ssl.SSLContext:
    """The benchmark's servers have self-signed certificates; TLS is measured, not trust.
    One context for every connection, as a mail app keeps one (loading the system's CAs
    for each connection cost the client more than the server's whole cycle)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.tag = 0
        self.commands = 0
        self.deflate: zlib._Compress | None = None
        self.inflate: zlib._Decompress | None = None
        self.inflated = b""

    @classmethod
    async def connect(cls, port: int, tls: bool = False, host: str = "127.0.0.1") -> Client:
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection(
            host, port, limit=1 << 20, ssl=client_tls() if tls else None
        )
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await reader.readline()
        LATENCY.setdefault("(connect)", []).append(time.perf_counter() - started)
        return cls(reader, writer)

    async def command(self, text: str | bytes) -> list[bytes]:
        self.tag += 1
        tag = b"b%d " % self.tag
        data = text.encode() if isinstance(text, str) else text
        self.send(tag + data + b"\r\n")
        started = time.perf_counter()
        lines: list[bytes] = []
        while True:
            line = await self.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            found = _LITERAL.search(line)
            if found:
                await self.readexactly(int(found.group(1)))
            if line.startswith(tag):
                self.commands += 1
                name = data.split(b" ", 1)[0].decode()
                LATENCY.setdefault(name, []).append(time.perf_counter() - started)
                if not line[len(tag) :].startswith(b"OK"):
                    raise RuntimeError(line.decode(errors="replace"))
                return lines
            lines.append(line)

    def send(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.writer.write(data)

    async def readline(self) -> bytes:
        if self.inflate is None:
            return await self.reader.readline()
        while b"\n" not in self.inflated:
            chunk = await self.reader.read(65536)
            if not chunk:
                return b""
            self.inflated += self.inflate.decompress(chunk)
        line, _, self.inflated = self.inflated.partition(b"\n")
        return line + b"\n"

    async def readexactly(self, size: int) -> bytes:
        if self.inflate is None:
            return await self.reader.readexactly(size)
        while len(self.inflated) < size:
            self.inflated += self.inflate.decompress(await self.reader.read(65536))
        data, self.inflated = self.inflated[:size], self.inflated[size:]
        return data

    async def compress(self) -> None:
        """COMPRESS=DEFLATE (RFC 4978): raw DEFLATE both ways after the tagged OK."""
        await self.command("COMPRESS DEFLATE")
        self.deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)

    async def login(self, address: str) -> None:
        await self.command(f'LOGIN "{address}" "{PASSWORD}"')

    def close(self) -> None:
        self.writer.close()


async def timed(client: Client, command: str, runs: int = 5) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        lines = await client.command(command)
        times.append(time.perf_counter() - started)
        count = len(lines)
    return statistics.median(times), count


async def first_select(port: int, label: str) -> None:
    """The time of the first SELECT of the big folder in a freshly started server."""
    client = await Client.connect(port)
    await client.login(BIG)
    started = time.perf_counter()
    lines = await client.command("SELECT INBOX")
    cold = time.perf_counter() - started
    exists = next(line for line in lines if line.endswith(b"EXISTS\r\n")).split()[1].decode()
    print(f"  {label:36} {cold * 1000:8.1f} ms   (a folder of {exists} messages)")
    await client.command("LOGOUT")
    client.close()


def first_selects(data_dir: Path) -> None:
    """The first SELECT of the big folder in a freshly started server: with the index
    file the worker keeps as it files mail (the folder never opened by IMAP); with no
    file at all (lost: every row is loaded, and the file written); and after a restart
    (reading the file that load wrote)."""
    from apps.imap import index

    index_dir = data_dir / "imap-index"
    shutil.rmtree(index_dir, ignore_errors=True)
    index.save_behind(datetime.min.replace(tzinfo=UTC))  # what the worker runs after filing
    fresh_server_select(data_dir, "SELECT (first ever, file by worker)")
    shutil.rmtree(index_dir)
    fresh_server_select(data_dir, "SELECT (first, index file lost)")
    fresh_server_select(data_dir, "SELECT (first after a restart)")


def fresh_server_select(data_dir: Path, label: str) -> None:
    port = free_port()
    server = start_server(data_dir, port)
    try:
        asyncio.run(first_select(port, label))
    finally:
        server.terminate()
        server.wait(30)


async def single_client(port: int) -> None:
    client = await Client.connect(port)
    await client.login(BIG)
    selected = b"".join(await client.command("SELECT INBOX"))
    highest = int(re.search(rb"HIGHESTMODSEQ (\d+)", selected).group(1))  # type: ignore[union-attr]
    rows = [
        ("SELECT (warm)", "SELECT INBOX"),
        ("UID FETCH 1:* (FLAGS)", "UID FETCH 1:* (FLAGS)"),
        ("UID FETCH 1:* (FLAGS) (CHANGEDSINCE)", f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})"),
        ("FETCH of 50 ENVELOPEs", "FETCH 5001:5050 (ENVELOPE)"),
        ("STATUS (MESSAGES UNSEEN UIDNEXT)", "STATUS INBOX (MESSAGES UNSEEN UIDNEXT)"),
        ("UID SEARCH on a header", 'UID SEARCH SUBJECT "token1234"'),
        ("UID SEARCH on body text", "UID SEARCH BODY word777"),
    ]
    for label, command in rows:
        median, count = await timed(client, command)
        print(f"  {label:36} {median * 1000:8.1f} ms   ({count} untagged responses)")
    times = []
    for _ in range(5):  # the build tops the folder up again on the next run
        await client.command("STORE * +FLAGS.SILENT (\\Deleted)")
        started = time.perf_counter()
        await client.command("EXPUNGE")
        times.append(time.perf_counter() - started)
    print(f"  {'EXPUNGE of one message':36} {statistics.median(times) * 1000:8.1f} ms")
    await client.command("LOGOUT")
    client.close()


# -- mixed load --------------------------------------------------------------------------------


async def load_client(port: int, address: str, deadline: float, seed: int) -> int:
    """Sessions of weighted random commands until the deadline; commands answered OK."""
    rng = random.Random(seed)
    done = 0
    while time.monotonic() < deadline:
        client = await Client.connect(port)
        await client.login(address)
        lines = await client.command("SELECT INBOX")
        exists = int(next(line for line in lines if line.endswith(b"EXISTS\r\n")).split()[1])
        for _ in range(rng.randint(20, 60)):
            if time.monotonic() >= deadline:
                break
            exists = await one_operation(client, rng, exists, address)
        await client.command("LOGOUT")
        done += client.commands
        client.close()
    return done


async def one_operation(client: Client, rng: random.Random, exists: int, address: str) -> int:
    pick = rng.random()
    n = rng.randint(1, max(exists, 1))
    if pick < 0.30:
        low = max(1, min(n, exists - 9))
        await client.command(f"FETCH {low}:{min(low + 9, exists)} (UID FLAGS ENVELOPE)")
    elif pick < 0.45:
        await client.command(f"FETCH {n} (BODY.PEEK[])")
    elif pick < 0.62:
        await client.command(f"STORE {n} {rng.choice('+-')}FLAGS (\\Seen)")
    elif pick < 0.75:
        data = message(rng.randint(1, 10**9), address)
        lines = await client.command(b"APPEND INBOX {%d+}\r\n%b" % (len(data), data))
        exists += sum(1 for line in lines if line.endswith(b"EXISTS\r\n"))
    elif pick < 0.83 and exists > LOAD_MESSAGES // 2:
        await client.command(f"STORE {n} +FLAGS.SILENT (\\Deleted)")
        lines = await client.command("EXPUNGE")
        exists -= sum(1 for line in lines if line.endswith(b"EXPUNGE\r\n"))
    elif pick < 0.93:
        await client.command("NOOP")
    else:
        lines = await client.command("SELECT INBOX")
        exists = int(next(line for line in lines if line.endswith(b"EXISTS\r\n")).split()[1])
    return exists


async def mixed_load(ports: list[int], pids: list[int], clients: int, seconds: float) -> None:
    """`clients` clients spread over the server processes (nodes) round-robin."""
    LATENCY.clear()
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    server_cpu, client_cpu = (
        sum(sum(cpu_seconds(pid).values()) for pid in pids),
        time.process_time(),
    )
    counts = await asyncio.gather(
        *(
            load_client(ports[i % len(ports)], f"load{i}@bench.test", deadline, i)
            for i in range(clients)
        )
    )
    elapsed = time.monotonic() - started
    total = sum(counts)
    print(
        f"  {clients} clients on {len(ports)} server(s), {elapsed:.0f} s:"
        f" {total} commands, {total / elapsed:.0f} commands/s"
    )
    server_cpu = sum(sum(cpu_seconds(pid).values()) for pid in pids) - server_cpu
    client_cpu = time.process_time() - client_cpu
    print(
        f"  CPU: server {server_cpu:.1f} s ({server_cpu / total * 1000:.2f} ms per command),"
        f" clients {client_cpu:.1f} s; load average {os.getloadavg()[0]:.1f}"
    )
    print_latencies()


# -- login-heavy cycle ---------------------------------------------------------------------------

CYCLE_FOLDER = 200  # messages kept in each cycling user's INBOX


@dataclass
class Target:
    """An IMAP server under test: where it listens and the process tree it runs as; for
    the idle section, where its POP3S and submission listeners are."""

    host: str
    port: int
    pid: int
    pop3s: int = 0
    submission: int = 0


async def top_up(target: Target, tls: bool, address: str) -> None:
    client = await Client.connect(target.port, tls, target.host)
    await client.login(address)
    lines = await client.command("SELECT INBOX")
    exists = int(next(line for line in lines if line.endswith(b"EXISTS\r\n")).split()[1])
    for n in range(exists, CYCLE_FOLDER):
        data = message(n, address)
        await client.command(b"APPEND INBOX {%d+}\r\n%b" % (len(data), data))
    await client.command("LOGOUT")
    client.close()


async def one_cycle(target: Target, tls: bool, address: str, rng: random.Random) -> int:
    """What a phone's mail app does when it wakes: connect, LOGIN, SELECT, FETCH the
    newest headers, mark one read, APPEND one, delete and EXPUNGE one, LOGOUT."""
    client = await Client.connect(target.port, tls, target.host)
    await client.login(address)
    lines = await client.command("SELECT INBOX")
    exists = int(next(line for line in lines if line.endswith(b"EXISTS\r\n")).split()[1])
    await client.command(f"FETCH {max(1, exists - 19)}:* (UID FLAGS ENVELOPE)")
    await client.command(f"STORE {rng.randint(1, exists)} +FLAGS (\\Seen)")
    data = message(rng.randint(1, 10**9), address)
    await client.command(b"APPEND INBOX {%d+}\r\n%b" % (len(data), data))
    await client.command("STORE 1 +FLAGS.SILENT (\\Deleted)")
    await client.command("EXPUNGE")
    await client.command("LOGOUT")
    client.close()
    return client.commands


async def cycle_load(target: Target, tls: bool, clients: int, seconds: float) -> None:
    """`clients` clients each running `one_cycle` back to back until the time is up."""
    addresses = [f"load{i}@bench.test" for i in range(clients)]
    await asyncio.gather(*(top_up(target, tls, address) for address in addresses))
    LATENCY.clear()
    deadline = time.monotonic() + seconds
    started, server_cpu = time.monotonic(), sum(cpu_seconds(target.pid).values())
    client_cpu = time.process_time()

    async def cycles(address: str, seed: int) -> tuple[int, int]:
        rng, done, commands = random.Random(seed), 0, 0
        while time.monotonic() < deadline:
            commands += await one_cycle(target, tls, address, rng)
            done += 1
        return done, commands

    counts = await asyncio.gather(*(cycles(a, i) for i, a in enumerate(addresses)))
    elapsed = time.monotonic() - started
    server_cpu = sum(cpu_seconds(target.pid).values()) - server_cpu
    client_cpu = time.process_time() - client_cpu
    done, commands = sum(c for c, _ in counts), sum(c for _, c in counts)
    print(
        f"  {clients} clients over {'IMAPS' if tls else 'IMAP'}, {elapsed:.0f} s: {done} cycles,"
        f" {done / elapsed:.1f} cycles/s, {commands / elapsed:.0f} commands/s; CPU per command:"
        f" server {server_cpu / commands * 1000:.2f} ms, clients {client_cpu / commands * 1000:.2f}"
        f" ms; load average {os.getloadavg()[0]:.1f}"
    )
    print_latencies()


def print_latencies() -> None:
    for name, times in sorted(LATENCY.items()):
        times.sort()
        p90 = times[int(len(times) * 0.9)]
        print(
            f"    {name:9} {len(times):6} x  median {statistics.median(times) * 1000:6.1f} ms"
            f"  p90 {p90 * 1000:6.1f} ms"
        )


# -- idle connections --------------------------------------------------------------------------


def pss_kib(root: int) -> int:
    """Proportional set size of `root` and its descendants: the memory they cost the
    machine, with pages shared between them (Dovecot's many processes) counted once."""
    total = 0
    for pid in cpu_seconds(root):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:  # ended meanwhile
            continue
        total += int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1))  # type: ignore[union-attr]
    return total


async def idle_connections(target: Target, count: int, tls: bool, compress: bool) -> None:
    """`count` sessions in IDLE; the server's memory per connection, then how long one new
    message (appended by another client) takes to reach all of them."""
    kind = ("IMAPS" if tls else "IMAP") + (" + COMPRESS=DEFLATE" if compress else "")
    warm = [await open_idle(target, tls, compress) for _ in range(5)]  # first-use allocations
    await asyncio.sleep(1)
    before = pss_kib(target.pid)
    clients: list[Client] = []
    for start in range(0, count, 50):
        batch = await asyncio.gather(
            *(open_idle(target, tls, compress) for _ in range(min(50, count - start)))
        )
        clients.extend(batch)
    await asyncio.sleep(3)
    after = pss_kib(target.pid)
    print(
        f"  {count} IDLE connections over {kind}: server memory (PSS) {before / 1024:.0f}"
        f" -> {after / 1024:.0f} MiB, {(after - before) / count:.1f} KiB per connection"
    )
    started = time.monotonic()
    appender = await Client.connect(target.port, tls, target.host)
    await appender.login(IDLE_USER)
    data = message(random.randint(1, 10**9), IDLE_USER)
    await appender.command(b"APPEND INBOX {%d+}\r\n%b" % (len(data), data))
    await asyncio.gather(*(wait_exists(c) for c in clients + warm))
    print(f"  a new message reached all {count} of them in {time.monotonic() - started:.2f} s")
    for client in [*clients, *warm, appender]:
        client.close()


async def open_idle(target: Target, tls: bool, compress: bool) -> Client:
    client = await Client.connect(target.port, tls, target.host)
    await client.login(IDLE_USER)
    if compress:
        await client.compress()
    await client.command("SELECT INBOX")
    client.send(b"i IDLE\r\n")
    assert (await client.readline()).startswith(b"+ ")
    return client


async def wait_exists(client: Client) -> None:
    while not (await client.readline()).endswith(b"EXISTS\r\n"):
        pass


async def idle_other_protocol(target: Target, count: int, protocol: str) -> None:
    """POP3S sessions waiting (before PASS), and SMTP sessions that said EHLO, STARTTLS
    and EHLO again and wait: the other ways a connection sits idle over TLS."""
    pop3s, submission = target.pop3s, target.submission

    async def pop3_session() -> asyncio.StreamWriter:
        reader, writer = await asyncio.open_connection(target.host, pop3s, ssl=client_tls())
        await reader.readline()
        # One maildrop takes one session (RFC 1939 §8), so these wait before logging in.
        writer.write(f"USER {IDLE_USER}\r\n".encode())
        assert (await reader.readline()).startswith(b"+OK")
        return writer

    async def smtp_session() -> asyncio.StreamWriter:
        reader, writer = await asyncio.open_connection(target.host, submission)

        async def reply() -> bytes:
            while (line := await reader.readline())[3:4] == b"-":
                pass
            return line

        await reply()
        writer.write(b"EHLO bench.test\r\n")
        await reply()
        writer.write(b"STARTTLS\r\n")
        assert (await reply()).startswith(b"220")
        await writer.start_tls(client_tls())
        writer.write(b"EHLO bench.test\r\n")
        assert (await reply()).startswith(b"250")
        return writer

    name, opener = (
        ("POP3S", pop3_session) if protocol == "POP3S" else ("SMTP after STARTTLS", smtp_session)
    )
    warm = [await opener() for _ in range(5)]
    await asyncio.sleep(1)
    before = pss_kib(target.pid)
    writers: list[asyncio.StreamWriter] = []
    for start in range(0, count, 50):
        writers += await asyncio.gather(*(opener() for _ in range(min(50, count - start))))
    await asyncio.sleep(3)
    after = pss_kib(target.pid)
    print(
        f"  {count} idle {name} sessions: server memory (PSS) {before / 1024:.0f}"
        f" -> {after / 1024:.0f} MiB, {(after - before) / count:.1f} KiB per connection"
    )
    for writer in writers + warm:
        writer.close()


# -- main --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    data_dir: Path,
    port: int,
    processes: int = 1,
    tls_port: int | None = None,
    others: dict[str, str] | None = None,
) -> subprocess.Popen:
    env = environment(data_dir, port, tls_port) | {"MAILHOST_PROCESSES": str(processes)}
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        cwd=ROOT,
        env=env | (others or {}),
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


SECTIONS = ("folder", "mixed", "cycle", "idle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/imap-bench"))
    parser.add_argument(
        "--nodes", type=int, default=1, help="servers for the mixed load (scale-out)"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="processes per server (MAILHOST_PROCESSES)"
    )
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}"
    )
    parser.add_argument(
        "--against",
        metavar="HOST:PORT:TLSPORT:PID",
        help="run the cycle and idle sections against another server (e.g. Dovecot, see"
        " bench/dovecot_reference.sh) whose users load0..N and idle@bench.test exist",
    )
    args = parser.parse_args()
    raise_fd_limit()
    only = set(args.only.split(","))
    if args.against:
        host, port, tls_port, pid = args.against.split(":")
        against_other(only, Target(host, int(port), int(pid)), int(tls_port), args)
        return
    print(f"data set in {args.data_dir}")
    build(args.data_dir, args.messages if "folder" in only else 0, args.clients)
    if "folder" in only:
        print("one client, big folder:")
        first_selects(args.data_dir)
    if "folder" in only or "mixed" in only:
        folder_and_mixed(args, only)
    if "cycle" in only:
        print(f"login-heavy cycle ({args.processes} process(es)):")
        with mailhost(args.data_dir, args.processes) as (_, secure):
            asyncio.run(cycle_load(secure, True, args.clients, args.seconds))
    if "idle" in only:
        print("idle connections (a freshly started server each):")
        for over_tls, compress in ((False, False), (True, False), (True, True)):
            with mailhost(args.data_dir, 1) as (plain, secure):
                target = secure if over_tls else plain
                asyncio.run(idle_connections(target, args.idle, over_tls, compress))
        for protocol in ("POP3S", "SMTP"):
            with mailhost(args.data_dir, 1) as (_, secure):
                asyncio.run(idle_other_protocol(secure, args.idle, protocol))


def against_other(only: set[str], plain: Target, tls_port: int, args: argparse.Namespace) -> None:
    tls = Target(plain.host, tls_port, plain.pid)
    if "cycle" in only:
        print("login-heavy cycle:")
        asyncio.run(cycle_load(tls, True, args.clients, args.seconds))
    if "idle" in only:
        print("idle connections:")
        for target, compress in ((plain, False), (tls, False), (tls, True)):
            asyncio.run(idle_connections(target, args.idle, target is tls, compress))


@contextlib.contextmanager
def mailhost(data_dir: Path, processes: int) -> Iterator[tuple[Target, Target]]:
    """A fresh server with IMAP and IMAPS on free ports."""
    port, tls_port, pop3s, submission = (free_port() for _ in range(4))
    others = {
        "MAILHOST_POP3S": f"127.0.0.1:{pop3s}",
        "MAILHOST_SUBMISSION": f"127.0.0.1:{submission}",
    }
    server = start_server(data_dir, port, processes, tls_port, others)
    try:
        yield (
            Target("127.0.0.1", port, server.pid),
            Target("127.0.0.1", tls_port, server.pid, pop3s, submission),
        )
    finally:
        stop_server(server)


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:  # a figure is taken; do not wait on a slow goodbye
        server.kill()
        server.wait(30)


def folder_and_mixed(args: argparse.Namespace, only: set[str]) -> None:
    port = free_port()
    server = start_server(args.data_dir, port, args.processes)
    try:
        if "folder" in only:
            asyncio.run(single_client(port))
        if "mixed" not in only:
            return
        print(f"mixed load ({args.processes} process(es) per server):")
        nodes = [(port, server)] + [
            (extra, start_server(args.data_dir, extra, args.processes))
            for extra in (free_port() for _ in range(args.nodes - 1))
        ]
        try:
            asyncio.run(
                mixed_load(
                    [p for p, _ in nodes], [s.pid for _, s in nodes], args.clients, args.seconds
                )
            )
        finally:
            for _, extra_server in nodes[1:]:
                extra_server.terminate()
                extra_server.wait(30)
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
