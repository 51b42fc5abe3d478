"""A worker killed with SIGKILL in the middle of the queue: after a restart every message
is delivered exactly once (the claims, the lease and the sweep)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from apps.mailserver.worker import worker_command
from apps.relay.models import QueuedMessage
from tests.conftest import ROOT
from tests.mailclient import raw_message
from tests.relay.helpers import queue, wait_until
from tests.relay.sink import Sink

# A queue of its own: neither this run's shared worker nor another run on the same Redis
# (CI, a colleague) takes its tasks.
QUEUE = f"relay-crash-test-{os.getpid()}"
MESSAGES = 200
KILL_AFTER = 60  # transactions received before the worker dies


def start_worker(environment: dict[str, str], schedule: Path | None = None) -> subprocess.Popen:
    """A worker like the one tests/conftest.py starts, on this test's queue; with a
    schedule file it also runs beat, which sends the sweep every second."""
    from django.db import connection

    command = worker_command(
        concurrency=4, loglevel="WARNING", queues=[QUEUE], beat_schedule=schedule, heartbeat=False
    )
    env = {**os.environ, **environment, "MAILHOST_DB_NAME": str(connection.settings_dict["NAME"])}
    return subprocess.Popen(command, cwd=ROOT, env=env)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_recorded(count: int) -> None:
    """Block until `count` rows are recorded as delivered. The database is asked from a
    thread of its own: the caller is the receiving server's event loop, stalled on purpose."""
    from django.db import connection

    def recorded() -> None:
        try:
            wait_until(lambda: QueuedMessage.objects.filter(state="delivered").count() >= count)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as helper:
        helper.submit(recorded).result()


@pytest.fixture
def target() -> Iterator[Sink]:
    server = Sink().start()
    yield server
    server.stop()


def test_a_worker_killed_mid_queue_loses_nothing_and_doubles_nothing(
    live_personas, zone, target, settings, tmp_path
):
    settings.RELAY_QUEUE = QUEUE
    environment = {
        "MAILHOST_RELAY_QUEUE": QUEUE,
        "MAILHOST_RELAY_PORT": str(target.port),
        "MAILHOST_RELAY_LEASE_SECONDS": "3",
        "MAILHOST_RELAY_REDISPATCH_SECONDS": "2",
        "MAILHOST_RELAY_SWEEP_SECONDS": "1",
    }
    zone.mx("crash.test")
    alice = live_personas["alice"]
    for n in range(MESSAGES):
        queue(alice, [f"r{n}@crash.test"], raw_message(alice.address, f"r{n}@crash.test", f"#{n}"))
    first = start_worker(environment)
    killed, restarted = threading.Event(), threading.Event()

    def kill_in_the_middle_of_a_transaction(envelope) -> str | None:
        if restarted.is_set() or len(target.messages()) < KILL_AFTER:
            return None
        if killed.is_set():
            # Data the dead worker sent before dying, read only now: its sender never
            # hears a reply either way, so the server need not take it.
            return "421 4.3.0 the client is gone"
        # The receiving server stalls here, so no other reply goes out. Once the worker
        # has recorded every "250" already sent, it dies with this message's DATA taken
        # and unanswered: the message it must send again. (A worker that dies between
        # reading "250" and recording it sends that message twice: no SMTP client can
        # avoid that, RFC 1047.)
        wait_until_recorded(len(target.messages()))
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        killed.set()
        return "421 4.3.0 the client is gone"

    target.before_data = kill_in_the_middle_of_a_transaction
    try:
        assert wait_until(killed.is_set, timeout=120), "the worker was never killed"
        assert QueuedMessage.objects.exclude(state="delivered").exists()
        restarted.set()
        second = start_worker(environment, schedule=tmp_path / "beat")
        try:
            done = wait_until(
                lambda: QueuedMessage.objects.filter(state="delivered").count() == MESSAGES,
                timeout=180,
            )
        finally:
            stop(second)
    finally:
        stop(first)
    assert done, QueuedMessage.objects.exclude(state="delivered").values("state", "last_error")[:5]
    subjects = Counter(m.header("Subject") for m in target.messages())
    assert len(subjects) == MESSAGES
    assert [s for s, n in subjects.items() if n > 1] == []
