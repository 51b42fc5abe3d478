"""Benchmark: IMAP on a folder of 100,000 messages, a mixed load of 10 clients, and the
resident memory of 1,000 idle IDLE connections.

    .venv/bin/python bench/imap_bench.py [--messages 100000] [--clients 10] [--seconds 30]
        [--idle 1000] [--data-dir /tmp/imap-bench]

The data directory is kept between runs: the big folder is built once (a few minutes;
2,000 distinct messages, each filed 50 times, so blobs stay few) and reused. The server
is its own process: `runmailserver` with only the IMAP listener on 127.0.0.1, plaintext
LOGIN allowed from loopback (so clients spend their time on IMAP, not TLS) and the
connection limits raised for the idle test. Clients are asyncio sockets in this process.

Reported: SELECT (the first ever, from the index file the worker keeps; the first with
the file lost; the first after a restart; warm),
UID FETCH 1:* (FLAGS), the same with CHANGEDSINCE (a CONDSTORE resync with nothing changed),
FETCH of 50 ENVELOPEs, STATUS, UID SEARCH on a header and on body text,
EXPUNGE of one message (median of 5 runs each); the mixed load in commands per second
(login, select, fetch, store, expunge, append, noop, logout); RSS growth per idle IDLE
connection, and how long a delivery takes to reach all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
settings.IMAP_COMMANDS_PER_SECOND = settings.IMAP_COMMAND_BURST = 1e9
from django.core.management import call_command
call_command("runmailserver", "--no-worker")
"""


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def environment(data_dir: Path, port: int) -> dict[str, str]:
    env = {**os.environ, "MAILHOST_DATA_DIR": str(data_dir)}
    env["DJANGO_SETTINGS_MODULE"] = "mailhost.settings"
    for name in ("SMTP", "SUBMISSION", "SUBMISSIONS", "POP3", "POP3S", "WEB", "HTTP", "IMAPS"):
        env[f"MAILHOST_{name}"] = "off"
    env["MAILHOST_ACME"] = "off"  # a benchmark orders no certificates
    env["MAILHOST_IMAP"] = f"127.0.0.1:{port}"
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


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.tag = 0
        self.commands = 0

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await reader.readline()
        return cls(reader, writer)

    async def command(self, text: str | bytes) -> list[bytes]:
        self.tag += 1
        tag = b"b%d " % self.tag
        data = text.encode() if isinstance(text, str) else text
        self.writer.write(tag + data + b"\r\n")
        started = time.perf_counter()
        lines: list[bytes] = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            found = _LITERAL.search(line)
            if found:
                await self.reader.readexactly(int(found.group(1)))
            if line.startswith(tag):
                self.commands += 1
                name = data.split(b" ", 1)[0].decode()
                LATENCY.setdefault(name, []).append(time.perf_counter() - started)
                if not line[len(tag) :].startswith(b"OK"):
                    raise RuntimeError(line.decode(errors="replace"))
                return lines
            lines.append(line)

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
    for name, times in sorted(LATENCY.items()):
        times.sort()
        p90 = times[int(len(times) * 0.9)]
        print(
            f"    {name:8} {len(times):6} x  median {statistics.median(times) * 1000:6.1f} ms"
            f"  p90 {p90 * 1000:6.1f} ms"
        )


# -- idle connections --------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def idle_connections(port: int, pid: int, count: int, data_dir: Path) -> None:
    before = rss_kib(pid)
    clients: list[Client] = []
    for start in range(0, count, 50):
        batch = await asyncio.gather(*(open_idle(port) for _ in range(min(50, count - start))))
        clients.extend(batch)
    await asyncio.sleep(3)
    after = rss_kib(pid)
    grown = after - before
    print(
        f"  {count} IDLE connections: server RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB,"
        f" {grown / count:.1f} KiB per connection"
    )
    started = time.monotonic()
    await asyncio.to_thread(deliver_one, data_dir)
    await asyncio.gather(*(wait_exists(c) for c in clients))
    print(f"  a new delivery reached all {count} of them in {time.monotonic() - started:.2f} s")
    for client in clients:
        client.close()


async def open_idle(port: int) -> Client:
    client = await Client.connect(port)
    await client.login(IDLE_USER)
    await client.command("SELECT INBOX")
    client.writer.write(b"i IDLE\r\n")
    assert (await client.reader.readline()).startswith(b"+ ")
    return client


async def wait_exists(client: Client) -> None:
    while not (await client.reader.readline()).endswith(b"EXISTS\r\n"):
        pass


def deliver_one(data_dir: Path) -> None:
    from apps.accounts.models import User
    from apps.mailstore import services

    user = User.objects.get(email=IDLE_USER)
    raw = message(random.randint(1, 10**9), IDLE_USER)
    services.deliver(services.NewMessage.from_bytes(raw), [user.pk])


# -- main --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(data_dir: Path, port: int, processes: int = 1) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        cwd=ROOT,
        env=environment(data_dir, port) | {"MAILHOST_PROCESSES": str(processes)},
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
    args = parser.parse_args()
    raise_fd_limit()
    print(f"data set in {args.data_dir}")
    build(args.data_dir, args.messages, args.clients)
    print("one client, big folder:")
    first_selects(args.data_dir)
    port = free_port()
    server = start_server(args.data_dir, port, args.processes)
    try:
        asyncio.run(single_client(port))
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
        print("idle connections (a freshly started server):")
        server.terminate()
        server.wait(30)
        port = free_port()
        server = start_server(args.data_dir, port)
        asyncio.run(idle_connections(port, server.pid, args.idle, args.data_dir))
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
