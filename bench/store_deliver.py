"""Benchmark: deliveries per second of 4 KB messages into one user's INBOX.

Runs 1 and 8 concurrent writers against a fresh database: SQLite in a temporary data
directory, and PostgreSQL when DATABASE_URL is set (a scratch database is created and
dropped). Writers are threads of one process sharing the group committer, as in the
server (the Celery worker's threads, the SMTP listener's thread pool); `--processes`
makes them separate processes with no group commit, the worst case. Every delivery is
durable when it returns: the commit is synchronous (SQLite synchronous=FULL in WAL mode;
PostgreSQL synchronous_commit=on), and the message's bytes are in it (a StoredBlob row,
as for every message up to 128 KB; a bigger one's blob file is fsynced, with its
directory, before the commit).

    .venv/bin/python bench/store_deliver.py [--messages 2000] [--writers 1 8] [--processes]
        [--repeat 3]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/...
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__" and not __package__:
    # Run as a file (`python bench/store_deliver.py`): start again as the module, with the
    # checkout importable (`apps`, `mailhost`, `tests`), as `python -m bench.store_deliver` is.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.getenv("PYTHONPATH")]))
    os.execv(sys.executable, [sys.executable, "-m", "bench.store_deliver", *sys.argv[1:]])
BODY = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 70)[:4000]


def setup_django(data_dir: str, db_name: str | None) -> None:
    os.environ["MAILHOST_DATA_DIR"] = data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
    if db_name:
        os.environ["MAILHOST_DB_NAME"] = db_name
    import django

    django.setup()


def message(writer: int, n: int) -> bytes:
    return (
        f"From: Bench {writer} <bench{writer}@example.net>\r\nTo: user@bench.test\r\n"
        f"Subject: bench {writer}/{n}\r\nMessage-ID: <{writer}.{n}.{time.time_ns()}@bench>\r\n"
        f"Date: Mon, 30 Nov 2026 12:00:00 +0000\r\n\r\n{BODY}\r\n"
    ).encode()


def writer_main(args: tuple) -> int:
    data_dir, db_name, user_id, writer, count, start_at = args
    setup_django(data_dir, db_name)
    return deliver_loop(user_id, writer, count, start_at, grouped=False)


def deliver_loop(user_id: int, writer: int, count: int, start_at: float, grouped: bool) -> int:
    from django.db import connection

    from apps.mailstore import groupcommit, services

    payloads = [message(writer, n) for n in range(count)]
    while time.time() < start_at:
        time.sleep(0.001)
    for raw in payloads:
        new = services.NewMessage.writing(raw)  # as the server files mail: blob alongside
        services.before_write_lock([new])
        if grouped:
            groupcommit.run(partial(services.deliver, new, [user_id]))
        else:
            services.deliver(new, [user_id])
    connection.close()
    return count


def run_threads(user_id: int, writers: int, total: int) -> float:
    from concurrent.futures import ThreadPoolExecutor

    per_writer = total // writers
    start_at = time.time() + 0.5
    with ThreadPoolExecutor(writers) as pool:
        jobs = [
            pool.submit(deliver_loop, user_id, w, per_writer, start_at, True)
            for w in range(writers)
        ]
        counts = [job.result() for job in jobs]
    return sum(counts) / (time.time() - start_at)


def prepare(data_dir: str, db_name: str | None) -> int:
    setup_django(data_dir, db_name)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.accounts import services
    from apps.accounts.models import Domain

    Domain.objects.get_or_create(name="bench.test")
    return services.create_user("user@bench.test", "bench-password", quota_bytes=0).pk


def run(data_dir: str, db_name: str | None, user_id: int, writers: int, total: int) -> float:
    per_writer = total // writers
    start_at = time.time() + 1.0
    jobs = [(data_dir, db_name, user_id, w, per_writer, start_at) for w in range(writers)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(writers) as pool:
        async_result = pool.map_async(writer_main, jobs)
        delivered = sum(async_result.get())
    elapsed = time.time() - start_at
    return delivered / elapsed


def threads_main(args: tuple) -> float:
    data_dir, db_name, writers, total = args
    user_id = prepare(data_dir, db_name)
    return run_threads(user_id, writers, total)


def run_in_subprocess(data_dir: str, db_name: str | None, writers: int, total: int) -> float:
    """A fresh process per run, so Django is set up once for that run's database."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(threads_main, ((data_dir, db_name, writers, total),))


def create_pg_database(url: str) -> str:
    import psycopg

    name = f"mailhost_bench_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name


def drop_pg_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--processes", action="store_true", help="one process per writer")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per figure (a shared VM is noisy)"
    )
    options = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    backend = "PostgreSQL" if url else "SQLite"
    kind = "processes" if options.processes else "threads, group commit"
    for writers in options.writers:
        rates = sorted(one_run(url, writers, options) for _ in range(options.repeat))
        print(
            f"{backend}: {writers} writer(s) ({kind}): {statistics.median(rates):,.0f}"
            f" deliveries/s, median of {len(rates)} (range {rates[0]:,.0f}-{rates[-1]:,.0f};"
            f" {options.messages} x 4 KB each, durable)",
            flush=True,
        )


def one_run(url: str, writers: int, options: argparse.Namespace) -> float:
    """Deliveries per second of one run on a fresh database."""
    with tempfile.TemporaryDirectory(prefix="mailhost-bench-") as data_dir:
        db_name = create_pg_database(url) if url else None
        try:
            if options.processes:
                context = multiprocessing.get_context("spawn")
                with context.Pool(1) as pool:
                    user_id = pool.apply(prepare, (data_dir, db_name))
                return run(data_dir, db_name, user_id, writers, options.messages)
            return run_in_subprocess(data_dir, db_name, writers, options.messages)
        finally:
            if url and db_name:
                drop_pg_database(url, db_name)


if __name__ == "__main__":
    main()
