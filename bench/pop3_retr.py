"""Benchmark: POP3 RETR throughput and server memory for one big message, and the time to
log in and list a large maildrop.

Runs the real listeners (pop3 with STLS, pop3s) on 127.0.0.1 in this process against a
fresh SQLite data directory. Memory is what tracemalloc sees allocated in the process
while the message streams (the message itself was built before tracing started).

    .venv/bin/python bench/pop3_retr.py [--size-mb 50] [--messages 10000]
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__" and not __package__:
    # Run as a file (`python bench/pop3_retr.py`): start again as the module, with the
    # checkout importable (`apps`, `mailhost`, `tests`), as `python -m bench.pop3_retr` is.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.getenv("PYTHONPATH")]))
    os.execv(sys.executable, [sys.executable, "-m", "bench.pop3_retr", *sys.argv[1:]])
PASSWORD = "bench-password"
LINE = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n"


def setup_django(data_dir: str) -> None:
    os.environ["MAILHOST_DATA_DIR"] = data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_user(name: str) -> int:
    from apps.accounts import services
    from apps.accounts.models import Domain

    Domain.objects.get_or_create(name="bench.test")
    return services.create_user(f"{name}@bench.test", PASSWORD, quota_bytes=0).pk


def big_message(size: int) -> bytes:
    header = b"From: a@bench.test\r\nTo: big@bench.test\r\nSubject: big\r\n\r\n"
    block = LINE * 49 + b"." + LINE
    return header + block * (size // len(block))


def small(n: int) -> bytes:
    header = f"From: a@bench.test\r\nSubject: m{n}\r\nMessage-ID: <{n}@b>\r\n\r\n"
    return header.encode() + LINE * 50


class Client:
    def __init__(self, port: int, tls: ssl.SSLContext, stls: bool) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        if not stls:
            sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
        self.sock = sock
        self.file = sock.makefile("rb")
        self.file.readline()
        if stls:
            self.command(b"STLS")
            self.file.close()
            self.sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
            self.file = self.sock.makefile("rb")

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        reply = self.file.readline()
        assert reply.startswith(b"+OK"), reply
        return reply

    def login(self, address: str) -> None:
        self.command(f"USER {address}".encode())
        self.command(f"PASS {PASSWORD}".encode())

    def drain_multiline(self) -> int:
        received, tail = 0, b""
        while not tail.endswith(b"\r\n.\r\n"):
            chunk = self.file.read1(1 << 20)
            assert chunk
            received += len(chunk)
            tail = (tail + chunk)[-5:]
        return received

    def close(self) -> None:
        self.command(b"QUIT")
        self.file.close()
        self.sock.close()


def bench_retr(port: int, tls: ssl.SSLContext, stls: bool, size: int) -> None:
    client = Client(port, tls, stls)
    client.login("big@bench.test")
    tracemalloc.start()
    started = time.perf_counter()
    client.command(b"RETR 1")
    received = client.drain_multiline()
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    client.close()
    label = "STLS  " if stls else "pop3s "
    print(
        f"RETR {size / 2**20:.0f} MB over {label}: {elapsed:.2f} s, "
        f"{received / 2**20 / elapsed:.0f} MB/s, peak traced memory {peak / 2**20:.1f} MB"
    )


def bench_listing(port: int, tls: ssl.SSLContext, messages: int) -> None:
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        client = Client(port, tls, stls=False)
        client.login("many@bench.test")
        client.command(b"UIDL")
        client.drain_multiline()
        client.close()
        timings.append(time.perf_counter() - started)
    print(f"login + UIDL + QUIT with {messages} messages: best {min(timings) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--messages", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pop3bench-") as data_dir:
        setup_django(data_dir)
        from apps.mailstore import services
        from tests.servers import RunningServer

        big, many = make_user("big"), make_user("many")
        services.deliver(services.NewMessage.from_bytes(big_message(args.size_mb << 20)), [big])
        batch = [(services.NewMessage.from_bytes(small(n)), [many]) for n in range(args.messages)]
        services.deliver_many(batch)
        server = RunningServer(("pop3", "pop3s")).start()
        from django.conf import settings

        tls = ssl.create_default_context(cafile=str(settings.TLS_CERT_FILE))
        try:
            bench_retr(server.port("pop3s"), tls, stls=False, size=args.size_mb << 20)
            bench_retr(server.port("pop3"), tls, stls=True, size=args.size_mb << 20)
            bench_listing(server.port("pop3s"), tls, args.messages)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
