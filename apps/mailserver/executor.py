"""The thread pool where listeners run their blocking work (database, DNS, fsync).

Protocol sessions call `sync_to_async(fn, thread_sensitive=False)`, which runs on the
loop's default executor; the supervisor installs this one. After each task it hands
pooled PostgreSQL connections back to the pool: a worker thread would otherwise keep one
checked out for its whole life, and a pool of N serves only N threads. SQLite
connections stay open per thread (opening one costs more than it saves).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django.db import connections

MAX_THREADS = 16


def _release_pooled_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if connection.settings_dict.get("OPTIONS", {}).get("pool"):
            connection.close()


def _run_and_release(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    finally:
        _release_pooled_connections()


class DatabaseExecutor(ThreadPoolExecutor):
    def __init__(self, max_workers: int = MAX_THREADS) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="mailhost-db")

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return super().submit(_run_and_release, fn, *args, **kwargs)
