"""Group commit: concurrent units of store work share one transaction and one fsync.

A synchronous commit costs an fsync (SQLite WAL with synchronous=FULL, PostgreSQL with
synchronous_commit=on). When several threads deliver at once, the first becomes the
leader: it runs everything queued, each unit in its own savepoint so one failure stays
its own, and commits once; the others wait for that commit and get their own result.
Nobody is answered before the commit that made their work durable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from django.db import close_old_connections, transaction

P = ParamSpec("P")
R = TypeVar("R")
MAX_BATCH = 128  # units per transaction: bounds how long the write lock is held
_inside = threading.local()


@dataclass
class _Unit:
    work: Callable[[], Any]
    isolated: bool = True
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class GroupCommitter:
    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Unit] = []
        self._leading = False

    def run(self, work: Callable[[], Any], isolated: bool = True) -> Any:
        """Run `work` (database writes) and return its result once it is committed.

        An `isolated` unit runs in a savepoint of its own when it shares the transaction,
        so its failure is its own. One that is not (work that fails only when the
        database does, like an append to a queue table) saves the two statements, and its
        failure rolls back and fails the whole group."""
        if getattr(_inside, "active", False):
            return work()  # already in a group's transaction (work that calls run())
        unit = _Unit(work, isolated)
        with self._lock:
            self._queue.append(unit)
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead()
        unit.done.wait()
        if unit.error is not None:
            raise unit.error
        return unit.result

    def _lead(self) -> None:
        while True:
            with self._lock:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                if not batch:
                    self._leading = False
                    return
            self._commit(batch)

    def _commit(self, batch: list[_Unit]) -> None:
        _inside.active = True
        try:
            with transaction.atomic():
                for unit in batch:
                    if not unit.isolated:
                        unit.result = unit.work()  # raising fails the group (below)
                        continue
                    try:
                        # A savepoint per unit keeps one failure its own; a unit alone
                        # needs none (its failure rolls back the transaction, which is
                        # all its own).
                        with transaction.atomic(savepoint=len(batch) > 1):
                            unit.result = unit.work()
                    except Exception as error:
                        unit.error = error
        except BaseException as error:  # the commit itself failed: nobody's work is durable
            close_old_connections()
            for unit in batch:
                unit.error = unit.error or error
        finally:
            _inside.active = False
            for unit in batch:
                unit.done.set()


committer = GroupCommitter()


def run(work: Callable[[], Any], isolated: bool = True) -> Any:
    """Run store writes through this process's group committer."""
    return committer.run(work, isolated)


def call(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """`fn(*args, **kwargs)` (store writes) through this process's group committer; for a
    session, `await in_thread(groupcommit.call, services.store_flags, ...)`."""
    return committer.run(lambda: fn(*args, **kwargs))
