"""Connections kept open between messages, and a cap on simultaneous deliveries to one
destination, for one worker process (its threads share them).

A connection returns to the pool after a transaction and is reused by the next message for
the same server if it is fresh and answers RSET; idle ones are closed after a while.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from apps.relay.client import Session

Key = tuple[str, str, int, str]  # host, address, port, profile (TLS policy, AUTH user)


class Busy(Exception):
    """Every slot for the destination stayed taken for the whole wait."""


class Pool:
    def __init__(
        self,
        *,
        per_destination: int,
        idle_seconds: float,
        max_transactions: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_destination = per_destination
        self.idle_seconds = idle_seconds
        self.max_transactions = max_transactions
        self.clock = clock
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._idle: dict[Key, list[tuple[float, Session]]] = defaultdict(list)

    @contextmanager
    def slot(self, destination: str, wait: float) -> Iterator[None]:
        """Hold one of the destination's `per_destination` slots, waiting up to `wait` s."""
        with self._lock:
            semaphore = self._slots.setdefault(
                destination, threading.BoundedSemaphore(self.per_destination)
            )
        if not semaphore.acquire(timeout=wait):
            raise Busy(destination)
        try:
            yield
        finally:
            semaphore.release()

    def take(self, key: Key) -> Session | None:
        """A live idle session for `key`, or None."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                since, session = idle.pop()
            if self.clock() - since <= self.idle_seconds and session.reset():
                return session
            session.close()

    def give(self, key: Key, session: Session) -> None:
        """Keep a session after its transaction, unless it is broken or has done enough."""
        if session.broken or session.transactions >= self.max_transactions:
            session.close()
            return
        with self._lock:
            self._idle[key].append((self.clock(), session))

    def prune(self) -> int:
        """Close sessions idle too long; returns how many."""
        now = self.clock()
        stale = []
        with self._lock:
            for idle in self._idle.values():
                stale += [s for since, s in idle if now - since > self.idle_seconds]
                idle[:] = [(since, s) for since, s in idle if now - since <= self.idle_seconds]
        for session in stale:
            session.close()
        return len(stale)

    def close_all(self) -> None:
        with self._lock:
            sessions = [s for idle in self._idle.values() for _, s in idle]
            self._idle.clear()
        for session in sessions:
            session.close()


_pool: Pool | None = None
_pool_lock = threading.Lock()


def shared_pool() -> Pool:
    """This process's pool, sized from settings."""
    global _pool
    from django.conf import settings

    with _pool_lock:
        if _pool is None:
            _pool = Pool(
                per_destination=settings.RELAY_MAX_PER_DESTINATION,
                idle_seconds=settings.RELAY_IDLE_SECONDS,
                max_transactions=settings.RELAY_MESSAGES_PER_CONNECTION,
            )
        return _pool
