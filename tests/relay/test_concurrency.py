"""Connections per destination across processes: slots under a window that opens while
deliveries succeed and closes on failures (as Postfix's slow start)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.relay import delivery
from apps.relay.concurrency import Busy, FileLimiter, RedisLimiter, Window, slot
from apps.relay.models import QueuedMessage
from apps.relay.pool import Pool
from tests.relay.helpers import queue, reload

ROOT = Path(__file__).resolve().parents[2]
WINDOW = Window(initial=2, maximum=4)
HOLDER = """
import sys
from pathlib import Path
from apps.relay.concurrency import FileLimiter, Window
limiter = FileLimiter(Path(sys.argv[1]), Window(2, 4))
held = [limiter.take("remote.test") for _ in range(2)]
print("holding" if all(h is not None for h in held) else "refused", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def limiter(tmp_path) -> FileLimiter:
    return FileLimiter(tmp_path / "slots", WINDOW)


@pytest.fixture
def pool() -> Iterator[Pool]:
    connections = Pool(idle_seconds=5, max_transactions=100)
    yield connections
    connections.close_all()


def test_the_window_opens_one_per_window_of_successes_and_closes_one_per_failure(limiter):
    sizes = [limiter.feedback("remote.test", success=True) for _ in range(4)]
    assert sizes == [2.5, 2.9, pytest.approx(3.245, abs=0.001), pytest.approx(3.553, abs=0.001)]
    assert [limiter.feedback("remote.test", success=True) for _ in range(4)][-1] == 4  # the cap
    assert [limiter.feedback("remote.test", success=False) for _ in range(4)] == [3, 2, 1, 1]
    assert limiter.size("elsewhere.test") == 2  # each destination has its own


def test_no_more_than_the_window_hold_slots_at_once(limiter):
    first, second = limiter.take("remote.test"), limiter.take("remote.test")
    assert first is not None and second is not None
    with pytest.raises(Busy), slot(limiter, "remote.test", wait=0.05):
        pass
    with slot(limiter, "elsewhere.test", wait=0.05):
        pass  # another destination is not affected
    limiter.give("remote.test", first)
    with slot(limiter, "remote.test", wait=0.05):
        pass


def test_slots_are_shared_with_other_processes_and_freed_when_they_die(tmp_path, limiter):
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "slots")],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
            assert limiter.take("remote.test") is None  # the other process has both
        finally:
            holder.kill()
    assert limiter.take("remote.test") is not None  # the kernel let its locks go


def test_a_run_finding_every_slot_held_leaves_its_rows_to_the_holders(
    personas, zone, sink, pool, limiter
):
    zone.mx("remote.test")
    [row] = queue(personas["alice"], ["friend@remote.test"])
    held = [limiter.take("remote.test"), limiter.take("remote.test")]
    assert delivery.run(row.pk, resolver=zone.resolver, pool=pool, limiter=limiter) == 0
    row = reload(row)
    assert (row.state, row.attempts) == (QueuedMessage.State.QUEUED, 0)
    limiter.give("remote.test", held[0])
    assert delivery.run(row.pk, resolver=zone.resolver, pool=pool, limiter=limiter) == 1
    assert reload(row).state == QueuedMessage.State.DELIVERED


def test_refused_connections_close_the_window_and_deliveries_open_it(
    personas, zone, sink, pool, limiter
):
    # 127.0.0.2 is loopback too, but nothing listens there on the sink's port.
    zone.mx("down.test", (10, "mx.down.test"), address="127.0.0.2")
    zone.mx("remote.test")
    alice = personas["alice"]
    [down] = queue(alice, ["friend@down.test"])
    assert delivery.run(down.pk, resolver=zone.resolver, pool=pool, limiter=limiter) == 1
    assert limiter.size("down.test") == 1
    rows = [queue(alice, [f"r{n}@remote.test"])[0] for n in range(3)]
    assert delivery.run(rows[0].pk, resolver=zone.resolver, pool=pool, limiter=limiter) == 3
    assert limiter.size("remote.test") == pytest.approx(3.245, abs=0.001)


def test_redis_holds_the_slots_and_window_for_every_node(settings):
    if not settings.REDIS_URL:
        pytest.skip("scaled out only: needs REDIS_URL")
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = f"mailhost-test:{uuid.uuid4().hex}"
    one, other = (RedisLimiter(client, prefix, WINDOW, lease=60) for _ in range(2))
    try:
        first, second = one.take("remote.test"), other.take("remote.test")
        assert first and second and one.take("remote.test") is None
        other.give("remote.test", second)
        assert one.take("remote.test") is not None
        assert one.feedback("remote.test", success=True) == 2.5
        assert other.size("remote.test") == 2.5
        assert other.feedback("remote.test", success=False) == 1.5
    finally:
        client.delete(*client.keys(f"{prefix}:*"))
        client.close()
