"""Django's SQLite backend, with a fair queue in front of the database's write lock.

Every transaction here starts with BEGIN IMMEDIATE, which takes SQLite's write lock. A
writer that finds it taken by another process waits in SQLite's busy handler, which
sleeps and retries (1, 2, 5, 10 ... 100 ms): it wakes late after a short transaction, and
against a process that commits back to back (SMTP accepting, a worker filing) it can miss
every gap. So each transaction first takes an exclusive `flock` on a file beside the
database: the kernel wakes a waiter the moment the holder is done. The flock is only a
queue; SQLite's own lock stays what keeps the data safe, and statements outside a
transaction still rely on the busy timeout alone.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

from django.db.backends.sqlite3 import base

# django-stubs leave out the private methods this overrides.
_SQLiteWrapper: Any = base.DatabaseWrapper


class DatabaseWrapper(_SQLiteWrapper):
    _queue_fd: int | None = None
    _queue_pid = 0
    _queued = False

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if not self.is_in_memory_db():
            self._open_queue()
        return connection

    def _open_queue(self) -> None:
        # A flock belongs to the open file, which a fork shares: a process opens its own.
        if self._queue_fd is None or self._queue_pid != os.getpid():
            name = f"{self.settings_dict['NAME']}-writers"
            self._queue_fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._queue_pid = os.getpid()

    def _start_transaction_under_autocommit(self):
        if self._queue_fd is not None and not self._queued:
            self._open_queue()
            fcntl.flock(self._queue_fd, fcntl.LOCK_EX)  # releases the GIL while it waits
            self._queued = True
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._leave_queue()
            raise

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._leave_queue()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._leave_queue()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._leave_queue()
            if self._queue_fd is not None and self._queue_pid == os.getpid():
                os.close(self._queue_fd)
            self._queue_fd = None

    def _leave_queue(self) -> None:
        # Never through a file inherited across a fork: that would release the parent's.
        if self._queued and self._queue_fd is not None and self._queue_pid == os.getpid():
            fcntl.flock(self._queue_fd, fcntl.LOCK_UN)
        self._queued = False
