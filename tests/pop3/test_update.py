"""UPDATE state and the maildrop lock: DELE takes effect at QUIT only, one session per
maildrop, and whatever ends a session otherwise leaves the mail where it was."""

from __future__ import annotations

import asyncio
import poplib
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.mailstore import events
from apps.mailstore.models import Expunged
from apps.pop3 import locks
from apps.pop3.models import MaildropLock
from tests.pop3.conftest import RawClient, deliver, inbox_uids, message
from tests.servers import RunningServer


@pytest.fixture
def three(alice) -> list[int]:
    return [deliver(alice, message(n)) for n in (1, 2, 3)]


@pytest.mark.parametrize("kind", ["stls", "pop3s"])
def test_dele_then_quit_removes_the_messages(pop3, alice, three, kind):
    client = pop3.login(alice, kind)
    client.dele(1)
    client.dele(3)
    assert inbox_uids(alice) == three  # nothing happens before QUIT
    assert client.quit() == b"+OK Mailhost POP3 server signing off (1 messages left)"
    assert inbox_uids(alice) == [three[1]]
    assert sorted(Expunged.objects.values_list("uid", flat=True)) == [three[0], three[2]]


@pytest.mark.parametrize("kind", ["stls", "pop3s"])
def test_dele_then_a_dropped_connection_keeps_every_message(pop3, alice, three, kind):
    client = pop3.login(alice, kind)
    client.dele(1)
    client.dele(2)
    client.close()  # no QUIT: the connection just goes away
    client = pop3.login_when_free(alice, kind)
    assert client.stat()[0] == 3
    client.quit()
    assert inbox_uids(alice) == three


def test_a_quit_that_removes_messages_tells_other_sessions(pop3, mailserver, alice, three):
    async def removal_is_announced() -> events.Change:
        subscription = events.subscribe(alice.id)
        try:
            await asyncio.to_thread(remove_first)
            return await asyncio.wait_for(subscription.get(), timeout=10)
        finally:
            subscription.close()

    def remove_first() -> None:
        client = pop3.login(alice)
        client.dele(1)
        client.quit()

    future = asyncio.run_coroutine_threadsafe(removal_is_announced(), mailserver.loop)
    assert future.result(timeout=30).user_id == alice.id


def test_a_second_session_is_refused_with_in_use_until_the_first_quits(pop3, alice, three):
    first = pop3.login(alice)
    second = pop3.connect("pop3s")
    second.user(alice.address)
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[IN-USE\]"):
        second.pass_(alice.password)
    first.quit()
    second.user(alice.address)
    assert second.pass_(alice.password).startswith(b"+OK")
    assert second.stat()[0] == 3
    second.quit()


def test_another_users_lock_does_not_get_in_the_way(pop3, live_personas):
    alice, bob = live_personas["alice"], live_personas["bob"]
    first = pop3.login(alice)
    second = pop3.login(bob, "pop3s")
    second.quit()
    first.quit()


def test_a_lock_left_by_a_crashed_node_is_taken_over_once_stale(pop3, alice, three):
    old = timezone.now() - locks.STALE_AFTER - timedelta(seconds=1)
    MaildropLock.objects.create(user_id=alice.id, holder="dead-node:1:x", refreshed_at=old)
    client = pop3.login(alice)
    assert client.stat()[0] == 3
    client.quit()
    assert not MaildropLock.objects.filter(user_id=alice.id).exists()


def test_a_fresh_lock_held_by_another_node_means_in_use(pop3, alice):
    MaildropLock.objects.create(user_id=alice.id, holder="node-b:1:x", refreshed_at=timezone.now())
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        pop3.login(alice)


def test_a_session_that_lost_its_lock_removes_nothing_at_quit(pop3, alice, three):
    client = pop3.login(alice)
    client.dele(1)
    later = timezone.now() + locks.STALE_AFTER + timedelta(seconds=1)
    assert locks.acquire(alice.id, "node-b:1:x", now=later)
    with pytest.raises(poplib.error_proto, match=r"Lost the maildrop lock"):
        client.quit()
    client.close()
    assert inbox_uids(alice) == three


def test_quit_before_login_just_says_goodbye(pop3):
    client = pop3.connect()
    assert client.quit().startswith(b"+OK")


def test_a_shutdown_ends_sessions_without_removing_anything(alice, three):
    server = RunningServer(("pop3s",)).start()
    client = RawClient(server.port("pop3s"))
    try:
        client.login(alice)
        assert client.command(b"DELE 1").startswith(b"+OK")
    finally:
        server.stop()
    assert client.line() == b""  # cut off, no reply: there is no one to read it
    client.close()
    assert inbox_uids(alice) == three
    assert not MaildropLock.objects.exists()


def test_a_live_session_keeps_its_lock_fresh(pop3, alice, monkeypatch):
    monkeypatch.setattr(locks, "REFRESH_EVERY", timedelta(seconds=0.05))
    client = pop3.login(alice)
    taken = MaildropLock.objects.get(user_id=alice.id).refreshed_at
    deadline = time.monotonic() + 10
    while MaildropLock.objects.get(user_id=alice.id).refreshed_at == taken:
        assert time.monotonic() < deadline, "the lock was never refreshed"
        time.sleep(0.05)
    client.quit()
