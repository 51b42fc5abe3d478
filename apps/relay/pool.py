"""Connections kept open between messages, for one worker process (its threads share
them), as Postfix's connection cache keeps them (scache(8)).

A connection returns to the pool after a batch and is reused by the next one for the same
server if it is fresh and answers RSET (RFC 5321 §4.1.1.5); idle ones are closed after a
while, and one that has carried enough transactions is closed rather than kept.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable

from apps.relay.client import Session

Key = tuple[str, str, int, str]  # host, address, port, profile (TLS policy, AUTH user)


class Pool:
    def __init__(
        self,
        *,
        idle_seconds: float,
        max_transactions: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.max_transactions = max_transactions
        self.clock = clock
        self._lock = threading.Lock()
        self._idle: dict[Key, list[tuple[float, Session]]] = defaultdict(list)

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
                idle_seconds=settings.RELAY_IDLE_SECONDS,
                max_transactions=settings.RELAY_MESSAGES_PER_CONNECTION,
            )
        return _pool
