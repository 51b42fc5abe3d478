"""The sweep that makes a lost Celery message harmless, and queue management from the shell."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from apps.relay import delivery, services
from apps.relay.models import QueuedMessage
from tests.relay.helpers import queue, reload


@pytest.fixture
def dispatched(monkeypatch) -> list[int]:
    """The rows handed to Celery (recorded here instead of sent)."""
    sent: list[int] = []
    monkeypatch.setattr(services, "dispatch", lambda ids, countdown=0: sent.extend(ids))
    return sent


def test_the_sweep_sends_a_due_row_whose_task_was_lost(personas, dispatched):
    [row] = queue(personas["alice"], ["a@remote.test"])
    assert services.sweep() == 0  # its task is on the way
    later = timezone.now() + timedelta(seconds=301)
    assert services.sweep(later) == 1
    assert dispatched == [row.pk]
    assert services.sweep(later) == 0  # sent again just now


def test_the_sweep_sends_a_retry_when_it_falls_due(personas, dispatched):
    [row] = queue(personas["alice"], ["a@remote.test"])
    now = timezone.now()
    QueuedMessage.objects.filter(pk=row.pk).update(next_attempt_at=now + timedelta(hours=1))
    assert services.sweep(now) == 0
    assert services.sweep(now + timedelta(hours=1)) == 1


def test_the_sweep_frees_a_row_whose_worker_died_mid_attempt(personas, dispatched):
    [row] = queue(personas["alice"], ["a@remote.test"])
    now = timezone.now()
    assert delivery.claim(row.pk, now) is not None
    assert services.sweep(now) == 0  # the lease still runs
    after_lease = now + timedelta(seconds=1801)
    assert services.sweep(after_lease) == 1
    row = reload(row)
    assert (row.state, row.claim) == ("queued", "")
    assert dispatched == [row.pk]


def test_a_held_message_waits_until_released(personas, dispatched):
    [row] = queue(personas["alice"], ["a@remote.test"])
    services.hold(row.pk)
    assert delivery.attempt(row.pk) == ""
    assert services.sweep(timezone.now() + timedelta(days=1)) == 0
    services.release(row.pk)
    assert reload(row).state == "queued"


def test_a_message_being_delivered_cannot_be_held_or_deleted(personas, dispatched):
    [row] = queue(personas["alice"], ["a@remote.test"])
    delivery.claim(row.pk, timezone.now())
    with pytest.raises(services.QueueError, match="sending"):
        services.hold(row.pk)
    with pytest.raises(services.QueueError):
        services.delete(row.pk)


def test_the_queue_command_lists_shows_holds_releases_retries_and_deletes(
    personas, dispatched, capsys
):
    [row] = queue(personas["alice"], ["a@remote.test"])
    call_command("queue", "list")
    assert f"#{row.pk}" in capsys.readouterr().out
    call_command("queue", "show", str(row.pk))
    assert '"a@remote.test"' in capsys.readouterr().out
    call_command("queue", "hold", str(row.pk))
    assert reload(row).state == "held"
    call_command("queue", "list", "--state", "held")
    assert f"#{row.pk}" in capsys.readouterr().out
    call_command("queue", "release", str(row.pk))
    call_command("queue", "retry", str(row.pk))
    assert reload(row).state == "queued"
    call_command("queue", "delete", str(row.pk))
    assert not QueuedMessage.objects.filter(pk=row.pk).exists()
    with pytest.raises(CommandError, match="no queued message"):
        call_command("queue", "show", str(row.pk))


def test_release_refuses_a_message_that_is_not_held(personas, dispatched):
    [row] = queue(personas["alice"], ["a@remote.test"])
    with pytest.raises(CommandError, match="not held"):
        call_command("queue", "release", str(row.pk))


def test_a_row_the_broker_refused_is_swept_at_the_next_run(personas, monkeypatch):
    from workers.tasks import relay_deliver

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    [row] = queue(personas["alice"], ["a@remote.test"])
    monkeypatch.setattr(relay_deliver, "apply_async", broker_down)
    services.dispatch([row.pk])
    assert reload(row).dispatched_at is None
    sent: list[int] = []
    monkeypatch.setattr(services, "dispatch", lambda ids, countdown=0: sent.extend(ids))
    assert services.sweep() == 1 and sent == [row.pk]


def test_finished_rows_are_forgotten_after_a_week(personas, dispatched):
    done, waiting = queue(personas["alice"], ["a@one.test", "b@two.test"])
    QueuedMessage.objects.filter(pk=done.pk).update(state="delivered")
    services.sweep(timezone.now() + timedelta(days=6))
    assert QueuedMessage.objects.count() == 2
    services.sweep(timezone.now() + timedelta(days=8))
    assert list(QueuedMessage.objects.values_list("pk", flat=True)) == [waiting.pk]
