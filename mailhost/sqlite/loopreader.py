"""Read-only queries on the event loop's own thread (SQLite only).

Sending a query to a database thread costs a message more CPU than the query itself:
RCPT's two indexed SELECTs take about 30 us, while the hop wakes a thread, hands the GIL
back and forth and wakes the loop again (bench/smtp_load.py: 1.45 -> 1.05 ms of server CPU
per message without it). In WAL mode a reader never waits for a writer, so such queries
can run on the loop itself, on a connection of the loop thread's own that may only read
(PRAGMA query_only) and never waits: where SQLite would make it wait (WAL recovery, a
checkpoint resetting the log) it raises `sqlite3.OperationalError` at once and the caller
goes to its database thread instead. Every query runs to its end, so the connection never
holds a read transaction open between queries (which would keep checkpoints from
finishing). PostgreSQL has no such reader: a round trip to the server must not block the
loop, so `for_this_thread` is None there.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

from django.db import connections

_local = threading.local()


class LoopReader:
    def __init__(self, path: str) -> None:
        # timeout=0: never sleep in the busy handler on the loop's thread.
        self._db = sqlite3.connect(path, timeout=0, isolation_level=None)
        self._db.execute("PRAGMA query_only = ON")
        self._sql: dict[str, str] = {}

    def fetch_one(self, sql: str, params: Sequence[Any]) -> tuple | None:
        """`plainsql.FetchOne`: the first row of a query written with Django's "%s"."""
        native = self._sql.get(sql)
        if native is None:
            native = self._sql[sql] = sql.replace("%s", "?")
        rows = self._db.execute(native, params).fetchall()  # to the end: no open read
        return rows[0] if rows else None


def for_this_thread() -> LoopReader | None:
    """This thread's reader of the default database, or None when it is not a file-backed
    SQLite database."""
    database: Any = connections["default"]  # the SQLite wrapper's own methods are used
    # A new one after a fork, or when the database changed (a test run's own database).
    key = (os.getpid(), database.settings_dict["NAME"])
    if getattr(_local, "key", None) != key:
        _local.key, _local.reader = key, _open(database)
    return _local.reader


def _open(database: Any) -> LoopReader | None:
    if database.vendor != "sqlite" or database.is_in_memory_db():
        return None
    return LoopReader(str(database.settings_dict["NAME"]))
