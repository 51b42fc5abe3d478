"""Benchmark: outbound mail end to end, as a user's mail goes out.

Starts `manage.py runmailserver` (submission on a loopback port, its Celery worker) in a
scratch data directory, a DNS server and a smart host on 127.0.0.1: a STARTTLS SMTP peer
that wants AUTH, whose certificate the relay is told to trust. N messages of 4 KB, one
outside recipient each, are submitted over C sessions, each with STARTTLS and AUTH PLAIN,
MAIL, RCPT and DATA pipelined (RFC 2920) as MTAs and busy clients do; the relay DKIM-signs
every one with RSA and Ed25519 and hands it to the smart host. One message goes through
first, untimed, so the clock starts with the worker up.

Prints the submission rate, the end-to-end rate (first submission to last delivery) and
the time from each message's 250 to its arrival at the smart host (median and 95th
percentile).

SQLite and the filesystem broker by default; with DATABASE_URL and REDIS_URL set,
PostgreSQL (a scratch database, created and dropped), Redis and a separate worker.
`--accept-only` runs no worker and measures submission acceptance alone, as
`bench/smtp_load.py --accept-only` measures the MX listener's.

    .venv/bin/python bench/relay_bench.py [--messages 2000] [--sessions 10] [--accept-only]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__" and not __package__:
    # Run as a file (`python bench/relay_bench.py`): start again as the module, with the
    # checkout importable (`apps`, `mailhost`, `tests`), as `python -m bench.relay_bench` is.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.getenv("PYTHONPATH")]))
    os.execv(sys.executable, [sys.executable, "-m", "bench.relay_bench", *sys.argv[1:]])

from apps.mailserver.tls import ensure_certificate  # noqa: E402
from bench.proctree import cpu_seconds  # noqa: E402
from tests.dnsserver import ZoneServer  # noqa: E402  (a real DNS server on loopback)
from tests.relay.sink import Sink  # noqa: E402  (the receiving SMTP server of the tests)

# 4 KB of text in 57-character lines (SMTP lines stop at 1,000 octets, RFC 5321 §4.5.3.1.6).
BODY = "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * 70
SENDER, PASSWORD = "sender@bench.test", "bench-password"
DESTINATION = "sink.test"
SMARTHOST_LOGIN = ("relay", "relay-secret")
# aiosmtpd logs a warning about its own deprecated attribute at every smart host login.
logging.getLogger("mail.log").setLevel(logging.ERROR)
QUEUE = f"relay-bench-{os.getpid()}"  # its own Celery queue: no other worker takes it


def message(session: int, n: int) -> bytes:
    return (
        f"From: Bench <{SENDER}>\r\nTo: r{n}@{DESTINATION}\r\nSubject: bench {session}/{n}\r\n"
        f"Message-ID: <{session}.{n}.{time.time_ns()}@bench.test>\r\n"
        f"Date: Mon, 30 Nov 2026 12:00:00 +0000\r\n\r\n{BODY}"
    ).encode()


def environment(data_dir: str, dns: str, smarthost: Sink, cert: Path, db_name: str) -> dict:
    env = {
        **os.environ,
        "MAILHOST_DATA_DIR": data_dir,
        "MAILHOST_LOG_LEVEL": "WARNING",
        "MAILHOST_DNS_SERVERS": dns,
        "MAILHOST_SUBMISSION": "127.0.0.1:0",
        "MAILHOST_SUBMISSION_RATE_PER_HOUR": "10000000",
        "MAILHOST_SMARTHOST": f"127.0.0.1:{smarthost.port}",
        "MAILHOST_SMARTHOST_USER": SMARTHOST_LOGIN[0],
        "MAILHOST_SMARTHOST_PASSWORD": SMARTHOST_LOGIN[1],
        "MAILHOST_RELAY_CA_FILE": str(cert),
        "MAILHOST_QUEUE": QUEUE,
    }
    for name in ("SMTP", "SUBMISSIONS", "IMAP", "IMAPS", "POP3", "POP3S", "WEB"):
        env[f"MAILHOST_{name}"] = "off"
    if db_name:
        env["MAILHOST_DB_NAME"] = db_name
    else:
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
    return env


def manage(env: dict, *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True
    )


def start_server(env: dict, embedded_worker: bool) -> tuple[subprocess.Popen, int]:
    command = [sys.executable, "manage.py", "runmailserver"]
    command += [] if embedded_worker else ["--no-worker"]
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
        if match := re.match(r"listening: submission\s+\S+:(\d+)", line):
            port = int(match.group(1))
        if line.startswith("worker: celery started") or (port and not embedded_worker):
            return server, port


def start_worker(env: dict) -> subprocess.Popen:
    """A separate worker, as scaled out (the embedded default runs one itself)."""
    from apps.mailserver.worker import worker_command

    command = worker_command(concurrency=8, loglevel="WARNING", heartbeat=False)
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


async def submit(port: int, session: int, count: int, accepted: dict[str, float]) -> None:
    """One submission session: STARTTLS (RFC 3207), AUTH PLAIN (RFC 4616), then `count`
    messages with MAIL, RCPT and DATA pipelined (RFC 2920). A raw asyncio client keeps
    the load generator's own CPU small."""
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

    async def command(line: bytes, expect: bytes) -> None:
        writer.write(line + b"\r\n")
        [reply] = await replies(1)
        if not reply.startswith(expect):
            raise RuntimeError(f"session {session}: {line!r} -> {reply!r}")

    await replies(1)
    await command(b"EHLO bench.client", b"250")
    await command(b"STARTTLS", b"220")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    await writer.start_tls(context)
    await command(b"EHLO bench.client", b"250")
    token = base64.b64encode(f"\0{SENDER}\0{PASSWORD}".encode())
    await command(b"AUTH PLAIN " + token, b"235")
    for n in range(count):
        writer.write(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<r{n}@{DESTINATION}>\r\nDATA\r\n".encode())
        codes = [r[:3] for r in await replies(3)]
        if codes != [b"250", b"250", b"354"]:
            raise RuntimeError(f"session {session}: {codes}")
        writer.write(message(session, n) + b"\r\n.\r\n")
        [reply] = await replies(1)
        if not reply.startswith(b"250"):
            raise RuntimeError(f"session {session}: {reply!r}")
        accepted[f"bench {session}/{n}"] = time.time()
    await command(b"QUIT", b"221")
    writer.close()


async def submit_all(port: int, sessions: int, per_session: int) -> dict[str, float]:
    accepted: dict[str, float] = {}
    await asyncio.gather(*(submit(port, s, per_session, accepted) for s in range(sessions)))
    return accepted


def wait_for(sink: Sink, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while len(sink.messages()) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def process_cpu(server: subprocess.Popen, worker: subprocess.Popen | None) -> dict[str, float]:
    """CPU seconds so far of the SMTP server and of the worker (its child, or its own)."""
    family = cpu_seconds(server.pid)
    own = family.pop(server.pid)
    workers = sum(family.values()) + (sum(cpu_seconds(worker.pid).values()) if worker else 0)
    return {"server": own, "worker": workers}


def measure_acceptance(port: int, sessions: int, total: int, cpu: Callable[[], dict]) -> dict:
    """Submission alone: no worker runs, the accepted messages wait in the Incoming table."""
    asyncio.run(submit_all(port, 1, 1))  # warms the server as the end-to-end run does
    cpu_before = cpu()
    started = time.time()
    accepted = asyncio.run(submit_all(port, sessions, total // sessions))
    submitted = time.time() - started
    used = cpu()["server"] - cpu_before["server"]
    return {
        "submitted": len(accepted),
        "accept_rate": len(accepted) / submitted,
        "cpu": {"server": used / len(accepted)},
    }


def measure(
    sink: Sink, port: int, sessions: int, total: int, timeout: float, cpu: Callable[[], dict]
) -> dict:
    asyncio.run(submit_all(port, 1, 1))  # a first message proves the worker is up
    if not wait_for(sink, 1, 120):
        raise SystemExit("the worker delivered nothing within two minutes")
    sink.reset()
    sink.pipelining = True  # as Postfix and most MTAs offer it (RFC 2920)
    cpu_before = cpu()
    started = time.time()
    accepted = asyncio.run(submit_all(port, sessions, total // sessions))
    submitted = time.time() - started
    if not wait_for(sink, len(accepted), timeout):
        print(f"only {len(sink.messages())} of {len(accepted)} delivered in time", flush=True)
    used = {name: seconds - cpu_before[name] for name, seconds in cpu().items()}
    arrived = {m.header("Subject"): m.at for m in sink.messages()}
    latencies = sorted(arrived[s] - accepted[s] for s in arrived if s in accepted)
    signed = sum("DKIM-Signature" in m.data.decode("utf-8", "replace") for m in sink.messages())
    return {
        "submitted": len(accepted),
        "delivered": len(latencies),
        "signed": signed,
        "tls": sum(m.tls for m in sink.messages()),
        "connections": sink.connections,
        "accept_rate": len(accepted) / submitted,
        "rate": len(latencies) / (max(arrived.values()) - started),
        "median": statistics.median(latencies),
        "p95": latencies[max(int(len(latencies) * 0.95) - 1, 0)],
        "cpu": {name: seconds / len(accepted) for name, seconds in used.items()},
    }


def create_pg_database(url: str) -> str:
    import psycopg

    name = f"mailhost_relay_bench_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name


def drop_pg_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)


def run(options: argparse.Namespace, data_dir: str, url: str, db_name: str) -> dict:
    cert, key = Path(data_dir) / "smarthost.pem", Path(data_dir) / "smarthost.key"
    ensure_certificate(cert, key, "smarthost.bench.test")  # valid for 127.0.0.1 too
    zone = ZoneServer(f"{DESTINATION}. MX 10 mx.{DESTINATION}.\nmx.{DESTINATION}. A 127.0.0.1")
    zone.start()
    sink = Sink(cert=cert, key=key, credentials=SMARTHOST_LOGIN).start()
    dns = ",".join(f"{host}:{port}" for host, port in zone.nameservers)
    env = environment(data_dir, dns, sink, cert, db_name)
    server = worker = None
    try:
        manage(env, "migrate", "--noinput")
        manage(env, "domain", "add", "bench.test")  # with its RSA and Ed25519 keys
        manage(env, "user", "add", SENDER, "--password", PASSWORD, "--quota", "0")
        if options.accept_only:
            alone, port = start_server(env, embedded_worker=False)
            server = alone  # stopped below
            return measure_acceptance(
                port, options.sessions, options.messages, lambda: process_cpu(alone, None)
            )
        server, port = start_server(env, embedded_worker=not url)
        worker = start_worker(env) if url else None
        return measure(
            sink,
            port,
            options.sessions,
            options.messages,
            options.timeout,
            lambda: process_cpu(server, worker),
        )
    finally:
        stop(worker)
        stop(server)
        sink.stop()
        zone.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--accept-only", action="store_true", help="no worker: measure submission alone"
    )
    options = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    db_name = create_pg_database(url) if url else ""
    try:
        with tempfile.TemporaryDirectory(prefix="mailhost-relay-bench-") as data_dir:
            result = run(options, data_dir, url, db_name)
    finally:
        if db_name:
            drop_pg_database(url, db_name)
    backend = "PostgreSQL + Redis" if url else "SQLite + filesystem broker"
    if options.accept_only:
        print(
            f"{backend}, no worker: {result['submitted']} submitted over {options.sessions} "
            f"STARTTLS+AUTH sessions at {result['accept_rate']:,.0f} msgs/s; CPU per message: "
            f"server {result['cpu']['server'] * 1000:.2f} ms",
            flush=True,
        )
        return
    print(
        f"{backend}: {result['submitted']} submitted over {options.sessions} STARTTLS+AUTH "
        f"sessions at {result['accept_rate']:,.0f} msgs/s; {result['delivered']:.0f} "
        f"delivered to the STARTTLS smart host ({result['signed']} DKIM-signed, "
        f"{result['tls']} over TLS, {result['connections']} connections) end to end at "
        f"{result['rate']:,.1f} msgs/s; 250-to-delivered median "
        f"{result['median'] * 1000:,.0f} ms, p95 {result['p95'] * 1000:,.0f} ms; CPU per "
        "message: " + ", ".join(f"{k} {v * 1000:.2f} ms" for k, v in result["cpu"].items()),
        flush=True,
    )


if __name__ == "__main__":
    main()
