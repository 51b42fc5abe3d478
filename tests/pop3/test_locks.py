"""The maildrop lock's conditional writes, on the database alone."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.pop3 import locks


def test_only_one_holder_gets_the_lock(alice):
    assert locks.acquire(alice.id, "a")
    assert not locks.acquire(alice.id, "b")
    assert locks.refresh(alice.id, "a")
    assert not locks.refresh(alice.id, "b")


def test_only_the_holder_can_release_it(alice):
    locks.acquire(alice.id, "a")
    locks.release(alice.id, "b")
    assert not locks.acquire(alice.id, "b")
    locks.release(alice.id, "a")
    assert locks.acquire(alice.id, "b")


def test_a_lock_not_refreshed_for_long_enough_is_taken_over(alice):
    now = timezone.now()
    assert locks.acquire(alice.id, "a", now=now)
    assert not locks.acquire(alice.id, "b", now=now + locks.STALE_AFTER - timedelta(seconds=1))
    assert locks.acquire(alice.id, "b", now=now + locks.STALE_AFTER + timedelta(seconds=1))
    assert not locks.refresh(alice.id, "a")


def test_holders_are_unique():
    assert len({locks.new_holder() for _ in range(100)}) == 100
