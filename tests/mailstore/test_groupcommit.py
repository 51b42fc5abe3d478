"""Group commit: units queued while a commit runs share the next transaction; a failing
isolated unit fails alone, a failing unit that is not isolated fails its whole group."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from apps.mailstore import plainsql
from apps.mailstore.groupcommit import GroupCommitter
from apps.mailstore.models import Incoming


def incoming(tag: str):
    """A unit of work: one Incoming row, as SMTP's accept writes it."""
    row = {"blob_key": tag.ljust(64, "0"), "size": 1, "source": "mx", "recipients": []}
    return lambda: plainsql.insert(Incoming, row)


def failing():
    raise RuntimeError("this unit fails")


def run_as_one_group(units: list[tuple[object, bool]]) -> list[object]:
    """Run `units` ((work, isolated) pairs) through one committer, so that all of them
    wait behind a first commit and then share the next one. Returns each one's result
    or the exception it raised."""
    committer = GroupCommitter()
    batches: list[int] = []
    commit = committer._commit

    def counted(batch: list) -> None:
        batches.append(len(batch))
        commit(batch)

    committer._commit = counted  # type: ignore[method-assign]
    release = threading.Event()
    outcomes: list[object] = [None] * len(units)

    def hold():
        release.wait(10)

    def call(index: int, work, isolated: bool) -> None:
        try:
            outcomes[index] = committer.run(work, isolated)
        except Exception as error:
            outcomes[index] = error
        finally:
            connection.close()  # each thread's own connection

    leader = threading.Thread(target=call, args=(-1, hold, True))
    outcomes.append(None)
    leader.start()
    threads = []
    for index, (work, isolated) in enumerate(units):
        thread = threading.Thread(target=call, args=(index, work, isolated))
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 10
        while len(committer._queue) < index + 1:  # queued in this order
            assert time.monotonic() < deadline
            time.sleep(0.001)
    release.set()
    for thread in [leader, *threads]:
        thread.join(10)
    assert batches == [1, len(units)]  # the holder alone, then all of them together
    return outcomes[:-1]


@pytest.mark.django_db(transaction=True)
def test_an_isolated_unit_that_fails_fails_alone():
    first, broken, last = run_as_one_group(
        [(incoming("a"), True), (failing, True), (incoming("b"), True)]
    )
    assert isinstance(broken, RuntimeError)
    assert isinstance(first, int) and isinstance(last, int)
    assert sorted(Incoming.objects.values_list("pk", flat=True)) == sorted([first, last])


@pytest.mark.django_db(transaction=True)
def test_a_unit_that_is_not_isolated_fails_its_whole_group_and_nothing_is_written():
    outcomes = run_as_one_group([(incoming("a"), False), (failing, False), (incoming("b"), True)])
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes), outcomes
    assert not Incoming.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_units_that_are_not_isolated_share_a_commit_and_each_gets_its_result():
    outcomes = run_as_one_group([(incoming(tag), False) for tag in "abcde"])
    ids = [outcome for outcome in outcomes if isinstance(outcome, int)]
    assert len(ids) == len(outcomes), outcomes
    assert sorted(Incoming.objects.values_list("pk", flat=True)) == sorted(ids)
