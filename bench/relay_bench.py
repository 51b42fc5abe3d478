"""Benchmark: outbound relay throughput through the real Celery worker.

Starts a DNS server and a receiving SMTP server on 127.0.0.1 (the test peers), a Celery
worker like the embedded one, waits until it delivers a first message, then queues N
messages (4 KB, one recipient each, DKIM-signed with RSA and Ed25519 like a user's mail)
as fast as the queue takes them. Prints messages per second (first queued to last
delivered) and the time from queueing to delivery (median and 95th percentile).

SQLite and the filesystem broker by default; with DATABASE_URL and REDIS_URL set,
PostgreSQL (a scratch database, created and dropped) and Redis.

    .venv/bin/python bench/relay_bench.py [--messages 1000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__" and not __package__:
    # Run as a file (`python bench/relay_bench.py`): start again as the module, with the
    # checkout importable (`apps`, `mailhost`, `tests`), as `python -m bench.relay_bench` is.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.getenv("PYTHONPATH")]))
    os.execv(sys.executable, [sys.executable, "-m", "bench.relay_bench", *sys.argv[1:]])
# 4 KB of text in 57-character lines (SMTP lines stop at 1,000 octets, RFC 5321 §4.5.3.1.6).
BODY = "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * 70
DOMAIN = "sink.test"
QUEUE = f"relay-bench-{os.getpid()}"  # its own Celery queue: no other worker takes it


def message(n: int) -> bytes:
    return (
        f"From: Bench <sender@bench.test>\r\nTo: r{n}@{DOMAIN}\r\nSubject: bench {n}\r\n"
        f"Message-ID: <{n}.{time.time_ns()}@bench.test>\r\n"
        f"Date: Mon, 30 Nov 2026 12:00:00 +0000\r\n\r\n{BODY}\r\n"
    ).encode()


def start_peers():
    from tests.dnsserver import ZoneServer
    from tests.relay.sink import Sink

    zone = ZoneServer(f"{DOMAIN}. MX 10 mx.{DOMAIN}.\nmx.{DOMAIN}. A 127.0.0.1").start()
    return zone, Sink().start()


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


def prepare() -> int:
    """Migrate the fresh database; a domain (with its DKIM keys) and a sender."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.accounts import services

    services.create_domain("bench.test")
    return services.create_user("sender@bench.test", "bench-password").pk


def start_worker(concurrency: int) -> subprocess.Popen:
    from apps.mailserver.worker import worker_command

    command = worker_command(
        concurrency=concurrency, loglevel="WARNING", queues=[QUEUE], heartbeat=False
    )
    return subprocess.Popen(command, cwd=ROOT, env=dict(os.environ))


def enqueue(sender_id: int, n: int) -> float:
    """Queue message `n` as submission would; returns when it was queued."""
    from apps.mailstore.blobs import blob_store
    from apps.relay import services

    raw = message(n)
    services.enqueue(
        blob_key=blob_store().put(raw),
        size=len(raw),
        mail_from="sender@bench.test",
        recipients=[{"address": f"r{n}@{DOMAIN}"}],
        sender_id=sender_id,
    )
    return time.time()


def wait_for(sink, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while len(sink.messages()) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def measure(sink, sender_id: int, total: int, timeout: float) -> dict[str, float]:
    enqueue(sender_id, -1)  # a first message proves the worker is up
    if not wait_for(sink, 1, 120):
        raise SystemExit("the worker delivered nothing within two minutes")
    queued_at = {f"bench {n}": enqueue(sender_id, n) for n in range(total)}
    queue_done = time.time()
    if not wait_for(sink, total + 1, timeout):
        print(f"only {len(sink.messages()) - 1} of {total} delivered in time", flush=True)
    received = {m.header("Subject"): m.at for m in sink.messages()}
    arrived = {subject: at for subject, at in received.items() if subject in queued_at}
    latencies = sorted(arrived[s] - queued_at[s] for s in arrived)
    first = min(queued_at.values())
    return {
        "delivered": len(arrived),
        "rate": len(arrived) / (max(arrived.values()) - first),
        "queue_rate": total / (queue_done - first),
        "median": statistics.median(latencies),
        "p95": latencies[int(len(latencies) * 0.95) - 1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4, help="worker threads")
    parser.add_argument("--timeout", type=float, default=600)
    options = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    zone, sink = start_peers()
    db_name = create_pg_database(url) if url else ""
    with tempfile.TemporaryDirectory(prefix="mailhost-relay-bench-") as data_dir:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="mailhost.settings",
            MAILHOST_DATA_DIR=data_dir,
            MAILHOST_DNS_SERVERS=",".join(f"{h}:{p}" for h, p in zone.nameservers),
            MAILHOST_RELAY_PORT=str(sink.port),
            MAILHOST_RELAY_QUEUE=QUEUE,
            MAILHOST_LOG_LEVEL="WARNING",
        )
        if db_name:
            os.environ["MAILHOST_DB_NAME"] = db_name
        worker = None
        try:
            sender_id = prepare()
            worker = start_worker(options.concurrency)
            result = measure(sink, sender_id, options.messages, options.timeout)
        finally:
            if worker is not None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(60)
            from django.db import connections

            connections.close_all()
            if db_name:
                drop_pg_database(url, db_name)
            sink.stop()
            zone.stop()
    backend = "PostgreSQL + Redis" if url else "SQLite + filesystem broker"
    print(
        f"{backend}, {options.concurrency} worker threads: {result['delivered']:.0f} messages "
        f"delivered at {result['rate']:,.1f} messages/s (queued at {result['queue_rate']:,.0f}/s); "
        f"queued-to-delivered median {result['median'] * 1000:,.0f} ms, "
        f"p95 {result['p95'] * 1000:,.0f} ms",
        flush=True,
    )


if __name__ == "__main__":
    main()
