"""SQLite writers queue on a flock beside the database (mailhost/sqlite/base.py): held
from BEGIN to COMMIT or ROLLBACK, so a writer in another process waits in the kernel and
goes the moment the holder is done, instead of polling in SQLite's busy handler."""

from __future__ import annotations

import fcntl
import os
from typing import Any

import pytest
from django.db import connection, transaction

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the queue is SQLite's"),
]


def _queue_is_free() -> bool:
    """Whether another process could take the queue now (a new open file stands for it)."""
    fd = os.open(f"{connection.settings_dict['NAME']}-writers", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_a_transaction_holds_the_queue_until_it_commits():
    connection.ensure_connection()
    assert _queue_is_free()
    with transaction.atomic():
        assert not _queue_is_free()
        with transaction.atomic():  # a savepoint: still the one transaction
            assert not _queue_is_free()
        assert not _queue_is_free()
    assert _queue_is_free()


def test_a_rolled_back_transaction_frees_the_queue():
    with pytest.raises(RuntimeError), transaction.atomic():
        assert not _queue_is_free()
        raise RuntimeError("the work failed")
    assert _queue_is_free()


def test_a_forked_process_queues_behind_its_parent():
    """A fork shares the parent's open files, and a flock belongs to the open file: the
    child must take the queue through a file of its own, or it would not wait."""
    connection.ensure_connection()
    with transaction.atomic():
        pid = os.fork()
        if pid == 0:  # the child: its first transaction must find the queue taken
            ours: Any = connection
            ours._open_queue()
            try:
                fcntl.flock(ours._queue_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os._exit(0)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_forked_process_never_releases_its_parents_place():
    """A child that inherited a connection in a transaction and closes it must not
    unlock the parent's queue file (one open file, one lock)."""
    connection.ensure_connection()
    with transaction.atomic():
        pid = os.fork()
        if pid == 0:
            ours: Any = connection
            ours._close()
            os._exit(0)
        os.waitpid(pid, 0)
        assert not _queue_is_free()
    assert _queue_is_free()
