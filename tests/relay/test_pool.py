"""Connection reuse, with a fixed clock and stand-in sessions."""

from __future__ import annotations

import pytest

from apps.relay.pool import Pool


class FakeSession:
    """Stands in for client.Session: answers RSET while alive."""

    def __init__(self, alive: bool = True) -> None:
        self.alive = alive
        self.broken = False
        self.transactions = 1
        self.closed = False

    def reset(self) -> bool:
        return self.alive

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


KEY = ("mx.remote.test", "127.0.0.1", 25, "opportunistic")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pool(clock) -> Pool:
    return Pool(idle_seconds=30, max_transactions=3, clock=clock)


def test_an_idle_session_is_reused_for_the_same_server(pool):
    session = FakeSession()
    pool.give(KEY, session)
    assert pool.take(KEY) is session
    assert pool.take(KEY) is None
    assert pool.take(("other", "127.0.0.1", 25, "x")) is None


def test_a_session_idle_too_long_or_dead_is_closed_not_reused(pool, clock):
    stale, dead = FakeSession(), FakeSession(alive=False)
    pool.give(KEY, stale)
    clock.now += 31
    pool.give(KEY, dead)
    assert pool.take(KEY) is None
    assert stale.closed and dead.closed


def test_a_broken_or_worn_session_is_not_kept(pool):
    broken, worn = FakeSession(), FakeSession()
    broken.broken = True
    worn.transactions = 3
    for session in (broken, worn):
        pool.give(KEY, session)
        assert session.closed
    assert pool.take(KEY) is None


def test_prune_closes_only_the_stale(pool, clock):
    old, fresh = FakeSession(), FakeSession()
    pool.give(KEY, old)
    clock.now += 20
    pool.give(KEY, fresh)
    clock.now += 15
    assert pool.prune() == 1
    assert old.closed and not fresh.closed
