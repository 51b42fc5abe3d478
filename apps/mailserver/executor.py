"""The thread pool where listeners run their blocking work (database, DNS, fsync).

Sessions call `mailhost.threads.in_thread(fn, ...)`, which runs on the loop's default
executor; the supervisor installs this one. After each task it hands pooled PostgreSQL
connections back to the pool: a worker thread would otherwise keep one checked out for its
whole life, and a pool of N serves only N threads. SQLite connections stay open per
thread (opening one costs more than it saves).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import connections

MAX_THREADS = 16


def _pooled_aliases() -> list[str]:
    return [a for a, s in settings.DATABASES.items() if s.get("OPTIONS", {}).get("pool")]


def _release_pooled_connections(aliases: list[str]) -> None:
    for alias in aliases:
        if connections[alias].connection is not None:
            connections[alias].close()


def _run_and_release(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    finally:
        # Looked up per task only where there is a pool (a few microseconds per task
        # otherwise spent walking every connection, on SQLite for nothing).
        if aliases := _pooled_aliases():
            _release_pooled_connections(aliases)


class DatabaseExecutor(ThreadPoolExecutor):
    def __init__(self, max_workers: int = MAX_THREADS) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="mailhost-db")

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return super().submit(_run_and_release, fn, *args, **kwargs)
