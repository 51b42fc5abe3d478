"""Benchmark: SEARCH, SORT and THREAD over one folder of 100,000 messages.

Fills a fresh database (SQLite in a temporary data directory, or a scratch PostgreSQL
database when DATABASE_URL is set) through `services.deliver_many`, so every message is
parsed and indexed as real mail is, then times the engine functions the IMAP session
calls. Messages form threads (In-Reply-To / References, "Re:" subjects), come from 500
senders and carry 1 to 4 KB of text drawn from a 20,000-word vocabulary. Filling skips
fsync (what is measured here is reading, not durability).

    .venv/bin/python bench/imap_search_bench.py [--messages 100000] [--data-dir DIR]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/... \
        [--database NAME]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__" and not __package__:
    # Run as a file (`python bench/imap_search_bench.py`): start again as the module, with the
    # checkout importable (`apps`, `mailhost`, `tests`), as `python -m bench.imap_search_bench` is.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.getenv("PYTHONPATH")]))
    os.execv(sys.executable, [sys.executable, "-m", "bench.imap_search_bench", *sys.argv[1:]])
BATCH = 1000


def setup_django(data_dir: str, db_name: str | None) -> None:
    os.environ["MAILHOST_DATA_DIR"] = data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
    if db_name:
        os.environ["MAILHOST_DB_NAME"] = db_name
    import django

    django.setup()


def vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choices(letters, k=rng.randint(3, 10))) for _ in range(20_000)]


def messages(count: int, rng: random.Random) -> list[bytes]:
    """Raw messages: about one in three starts a thread, the rest reply to a recent one."""
    words = vocabulary(rng)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    threads: list[tuple[str, list[str]]] = []  # subject, message-ids
    out = []
    for n in range(count):
        sender = rng.randrange(500)
        headers = [
            f"From: Sender {sender} <sender{sender}@example.net>",
            "To: user@bench.test",
            f"Message-ID: <{n}@bench.test>",
            f"Date: {(start + timedelta(minutes=5 * n)).strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        ]
        if threads and rng.random() < 0.65:
            subject, ids = threads[-rng.randrange(min(len(threads), 200)) - 1]
            headers += [f"Subject: Re: {subject}", f"In-Reply-To: {ids[-1]}"]
            headers.append("References: " + " ".join(ids[-10:]))
            ids.append(f"<{n}@bench.test>")
        else:
            subject = f"topic {n} " + " ".join(rng.choices(words, k=3))
            headers.append(f"Subject: {subject}")
            threads.append((subject, [f"<{n}@bench.test>"]))
        lines = [" ".join(rng.choices(words, k=10)) for _ in range(rng.randint(15, 60))]
        out.append(("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode())
    return out


def fill(count: int) -> None:
    """Create the user and deliver `count` messages to its INBOX."""
    from apps.accounts import services as accounts
    from apps.accounts.models import Domain
    from apps.mailstore import services

    Domain.objects.get_or_create(name="bench.test")
    user_id = accounts.create_user("user@bench.test", "bench-password", quota_bytes=0).pk
    rng = random.Random(5256)
    raw = messages(count, rng)
    real_fsync, os.fsync = os.fsync, lambda fd: None  # filling only, see the docstring
    started = time.perf_counter()
    try:
        for first in range(0, count, BATCH):
            batch = [
                (services.NewMessage.from_bytes(r), [user_id]) for r in raw[first : first + BATCH]
            ]
            services.deliver_many(batch)
    finally:
        os.fsync = real_fsync
    elapsed = time.perf_counter() - started
    print(f"filled {count:,} messages in {elapsed:.0f} s ({count / elapsed:,.0f}/s)", flush=True)


def settle() -> None:
    """What autovacuum does soon after a bulk load (PostgreSQL): statistics for the planner
    and GIN pending lists merged into the index."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Median wall time in milliseconds, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def report(what: str, ms: float, outcome: str) -> None:
    print(f"  {what:<48} {ms:8.1f} ms  {outcome:>16}", flush=True)


def measure(folder_id: int, words: list[str]) -> None:
    from apps.imap import query
    from apps.imap.command_types import SortCriterion
    from apps.imap.parser import parse_command
    from apps.imap.search import run_search
    from apps.imap.sort import run_sort
    from apps.imap.threading import run_thread

    uids = query.folder_uids(folder_id)

    def key(program: str) -> Any:
        return parse_command(f"t SEARCH {program}".encode()).args.key  # type: ignore[union-attr]

    searches = [
        "UNSEEN",
        "FROM sender123@",
        'SUBJECT "topic 4711 "',
        "HEADER Message-ID <777@",
        "FROM x",
        f"BODY {words[3]}",
        f'BODY "{words[3]} {words[4]}"',
        f"TEXT {words[5]}",
        "BODY zz",
        f"OR FROM sender7@ NOT BODY {words[3]}",
    ]
    for program in searches:
        ms, found = timed(partial(run_search, folder_id, key(program), uids=uids))
        report(f"SEARCH {program}", ms, f"{len(found):,} found")
    for criteria in (["DATE"], ["ARRIVAL"], ["SUBJECT"], ["REVERSE", "FROM"]):
        parsed = [SortCriterion(criteria[-1], criteria[0] == "REVERSE")]
        ms, found = timed(partial(run_sort, folder_id, parsed, key("ALL"), uids=uids))
        report(f"SORT ({' '.join(criteria)}) ALL", ms, f"{len(found):,} sorted")
    for algorithm in ("REFERENCES", "ORDEREDSUBJECT"):
        ms, threads = timed(partial(run_thread, folder_id, algorithm, key("ALL"), uids=uids))
        report(f"THREAD {algorithm} ALL", ms, f"{len(threads):,} threads")


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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--data-dir", help="keep blobs (and SQLite) here, reuse them next time")
    parser.add_argument("--database", help="PostgreSQL: fill this database, keep and reuse it")
    options = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    with tempfile.TemporaryDirectory(prefix="mailhost-bench-") as scratch:
        data_dir = options.data_dir or scratch
        db_name = (options.database or create_pg_database(url)) if url else None
        try:
            run(data_dir, db_name, options.messages)
        finally:
            if url and db_name and not options.database:
                drop_pg_database(url, db_name)


def run(data_dir: str, db_name: str | None, count: int) -> None:
    setup_django(data_dir, db_name)
    from django.core.management import call_command
    from django.db import connection

    from apps.mailstore.models import Folder

    call_command("migrate", verbosity=0)
    if not Folder.objects.filter(user__email="user@bench.test").exists():
        fill(count)
        settle()
    folder = Folder.objects.get(user__email="user@bench.test", name="INBOX")
    probe = folder.messages.get(uid=count // 2 + 1)
    words = fulltext_words(probe.blob_key)
    backend = "PostgreSQL" if db_name else "SQLite"
    print(f"{backend}, {folder.messages.count():,} messages:")
    measure(folder.pk, words)
    connection.close()


def fulltext_words(blob_key: str) -> list[str]:
    """Words from one message's body, to search for."""
    from apps.mailstore.blobs import blob_store

    return blob_store().read(blob_key).split(b"\r\n\r\n", 1)[1].decode().split()


if __name__ == "__main__":
    main()
