"""The folder index (apps.imap.index) stays equal to the store through deliveries, flag
changes, expunges and deletion, whoever makes them."""

from __future__ import annotations

import dataclasses
from array import array
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.imap import index, index_file, query
from apps.mailstore import services, uidsets
from apps.mailstore.models import Folder, Message
from tests.imap.conftest import deliver, deliver_many, message


def _state(entry: index.Entry) -> list[tuple[int, str]]:
    return [
        (uid, index.flags_text(bits, entry.keywords.get(uid, " ")))
        for uid, bits in zip(entry.uids, entry.flags, strict=True)
    ]


def _truth(folder_id: int) -> list[tuple[int, str]]:
    rows = Message.objects.filter(folder_id=folder_id).order_by("uid")
    return [(m.uid, "(" + " ".join(m.flag_list()) + ")") for m in rows]


def _current(folder_id: int) -> index.Entry:
    entry = index.folders.current(folder_id)
    entry.lock.release()
    return entry


@pytest.fixture
def inbox(alice):
    for n in range(1, 6):
        deliver(alice, message(n))
    folder = Folder.objects.get(user_id=alice.id, name="INBOX")
    index.folders.forget(folder.pk)
    return folder


def test_the_index_follows_every_kind_of_change(inbox, alice):
    assert _state(_current(inbox.pk)) == _truth(inbox.pk)
    services.store_flags(alice.id, inbox.pk, [(2, 3)], "add", ["\\Seen", "$Work"])
    deliver(alice, message(6))
    services.store_flags(alice.id, inbox.pk, [(1, 1), (4, 4)], "add", ["\\Deleted"])
    services.expunge(alice.id, inbox.pk)
    services.store_flags(alice.id, inbox.pk, [(3, 3)], "replace", ["\\Flagged"])
    entry = _current(inbox.pk)
    assert _state(entry) == _truth(inbox.pk)
    assert [uid for uid, _ in _state(entry)] == [2, 3, 5, 6]
    assert entry.known_keywords == {"$Work"}


def test_select_reads_from_the_index(inbox, alice):
    services.store_flags(alice.id, inbox.pk, [(1, 2)], "add", ["\\Seen"])
    snapshot = index.open_folder(alice.id, "INBOX")
    assert list(snapshot.uids) == [1, 2, 3, 4, 5]
    assert snapshot.first_unseen_uid == 3
    snapshot.uids.append(99)  # a private copy
    assert list(_current(inbox.pk).uids) == [1, 2, 3, 4, 5]


def test_flag_lines_answer_fetch_flags(inbox, alice):
    services.store_flags(alice.id, inbox.pk, [(2, 2)], "add", ["\\Answered"])
    lines = index.flag_lines(inbox.pk, [(1, 1), (2, 2)], ["UID", "FLAGS"])
    assert lines == b"* 1 FETCH (UID 1 FLAGS ())\r\n* 2 FETCH (UID 2 FLAGS (\\Answered))\r\n"


def test_a_deleted_folder_leaves_the_index(inbox, alice):
    services.create_folder(alice.user, "Gone")
    gone = Folder.objects.get(user_id=alice.id, name="Gone")
    _current(gone.pk)
    services.delete_folder(alice.user, "Gone")
    with pytest.raises(query.FolderGone):
        index.folders.current(gone.pk)
    assert gone.pk not in index.folders


def test_least_recently_used_folders_are_dropped(inbox, alice):
    small = index.FolderIndex(max_messages=6)
    archive = Folder.objects.get(user_id=alice.id, name="Archive")
    services.copy_messages(alice.id, inbox.pk, uidsets.to_ranges([1, 2, 3]), "Archive")
    for folder_id in (inbox.pk, archive.pk):
        small.current(folder_id).lock.release()
    assert small.cached() == [archive.pk]


# -- the index on disk (apps.imap.index_file) ---------------------------------------------------


@pytest.fixture
def saved_inbox(inbox, alice, monkeypatch):
    """The INBOX loaded once (which writes its file, even for 5 messages)."""
    monkeypatch.setattr(index_file, "MIN_MESSAGES", 1)
    services.store_flags(alice.id, inbox.pk, [(2, 2)], "add", ["$Work"])
    index.FolderIndex().current(inbox.pk).lock.release()
    assert index_file.read(inbox.pk) is not None
    return inbox


def _restarted(folder_id: int) -> tuple[index.Entry, list[str]]:
    """The folder as a freshly started process sees it, and the SQL that took."""
    with CaptureQueriesContext(connection) as queries:
        entry = index.FolderIndex().current(folder_id)
        entry.lock.release()
    return entry, [q["sql"] for q in queries.captured_queries]


def _loaded_every_row(statements: list[str]) -> bool:
    return any("ORDER BY uid" in sql and "modseq >" not in sql for sql in statements)


def test_a_restart_reads_the_file_and_catches_up_on_changes(saved_inbox, alice):
    services.store_flags(alice.id, saved_inbox.pk, [(1, 1)], "add", ["\\Seen", "$Late"])
    services.store_flags(alice.id, saved_inbox.pk, [(2, 2)], "remove", ["$Work"])
    services.store_flags(alice.id, saved_inbox.pk, [(3, 3)], "add", ["\\Deleted"])
    services.expunge(alice.id, saved_inbox.pk)
    deliver(alice, message(6))
    entry, statements = _restarted(saved_inbox.pk)
    assert not _loaded_every_row(statements)
    assert _state(entry) == _truth(saved_inbox.pk)
    assert [uid for uid, _ in _state(entry)] == [1, 2, 4, 5, 6]
    assert entry.known_keywords >= {"$Late"}


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "garbage"])
def test_a_damaged_file_is_ignored(saved_inbox, damage):
    path = index_file._path(saved_inbox.pk)
    assert path is not None
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped byte":
        path.write_bytes(data[:20] + bytes([data[20] ^ 1]) + data[21:])
    else:
        path.write_bytes(b"\x00garbage" * 50)
    entry, statements = _restarted(saved_inbox.pk)
    assert _loaded_every_row(statements)
    assert _state(entry) == _truth(saved_inbox.pk)


def test_a_file_the_store_cannot_continue_is_ignored(saved_inbox, alice):
    """A file of another UIDVALIDITY, or from after the database's own history (a
    restore from an older backup), could hide changes: the rows are loaded instead."""
    saved = index_file.read(saved_inbox.pk)
    assert saved is not None
    highest = Folder.objects.get(pk=saved_inbox.pk).highestmodseq
    saved.uids.append(99)
    saved.modseqs.append(highest + 5)
    saved.flags.append(0)
    for changed in (
        dataclasses.replace(saved, message_mark=highest + 5),
        dataclasses.replace(saved, expunge_mark=highest + 5),
        dataclasses.replace(saved, uidvalidity=saved.uidvalidity + 1),
    ):
        index_file.write(saved_inbox.pk, changed)
        entry, statements = _restarted(saved_inbox.pk)
        assert _loaded_every_row(statements), changed
        assert _state(entry) == _truth(saved_inbox.pk)


def test_a_deleted_folder_loses_its_file(saved_inbox, alice):
    services.create_folder(alice.user, "Gone")
    gone = Folder.objects.get(user_id=alice.id, name="Gone")
    services.copy_messages(alice.id, saved_inbox.pk, uidsets.to_ranges([1, 2]), "Gone")
    _current(gone.pk)
    assert index_file.read(gone.pk) is not None
    services.delete_folder(alice.user, "Gone")
    with pytest.raises(query.FolderGone):
        index.folders.current(gone.pk)
    assert index_file.read(gone.pk) is None


def test_files_of_folders_deleted_meanwhile_are_pruned(saved_inbox):
    """A folder deleted while no session had it open leaves its file behind; the IMAP
    listener prunes such files when it starts."""
    saved = index_file.read(saved_inbox.pk)
    assert saved is not None
    index_file.write(999_999, saved)
    assert index_file.prune() == 1
    assert index_file.read(999_999) is None
    assert index_file.read(saved_inbox.pk) is not None


def test_small_folders_and_the_off_setting_write_no_file(inbox, settings):
    _current(inbox.pk)
    assert index_file.read(inbox.pk) is None  # 5 messages: loading them costs nothing
    settings.IMAP_INDEX_DIR = None
    assert index_file._path(inbox.pk) is None


def test_the_file_format_round_trips():
    saved = index_file.Saved(
        7,
        40,
        38,
        array("q", [1, 5, 9]),
        array("q", [3, 40, 12]),
        array("B", [1, 0, 24]),
        {5: " $Work Réunion "},
    )
    assert index_file.parse(index_file.dump(saved)) == saved


# -- files kept by delivery (index.save_behind) -------------------------------------------------


@pytest.fixture
def small_thresholds(monkeypatch):
    """Files from 3 messages on, rewritten 4 changes behind (1000 and 2000 in production)."""
    monkeypatch.setattr(index_file, "MIN_MESSAGES", 3)
    monkeypatch.setattr(index, "SAVE_AFTER_CHANGES", 4)


def test_the_inbound_pipeline_keeps_a_file_for_folders_no_session_opened(
    inbox, alice, small_thresholds
):
    """Mail filed by the worker into a big folder that IMAP never opened leaves a file,
    so the first SELECT in any process reads it instead of every row."""
    from apps.mailstore.models import Incoming
    from workers.tasks import process_incoming

    assert index_file.read(inbox.pk) is None
    raw = message(6)
    new = services.NewMessage.from_bytes(raw)
    row = Incoming.objects.create(
        data=raw,
        blob_key=new.blob_key,
        size=new.size,
        source="mx",
        recipients=[{"address": alice.address, "user_ids": [alice.id]}],
    )
    assert process_incoming(row.pk) == 1
    saved = index_file.read(inbox.pk)
    assert saved is not None and list(saved.uids) == [1, 2, 3, 4, 5, 6]
    services.store_flags(alice.id, inbox.pk, [(6, 6)], "add", ["\\Seen"])
    entry, statements = _restarted(inbox.pk)
    assert not _loaded_every_row(statements)
    assert _state(entry) == _truth(inbox.pk)


def test_a_file_is_rewritten_only_when_far_behind(inbox, alice, small_thresholds):
    started = Folder.objects.get(pk=inbox.pk).changed_at
    assert index.save_behind(started) == 1
    first = index_file.message_mark(inbox.pk)
    services.store_flags(alice.id, inbox.pk, [(1, 3)], "add", ["\\Seen"])
    assert index.save_behind(started) == 0  # fewer than 4 changes behind: kept as it is
    assert index_file.message_mark(inbox.pk) == first
    for uid in (1, 2, 3, 4):
        services.store_flags(alice.id, inbox.pk, [(uid, uid)], "add", ["\\Flagged"])
    assert index.save_behind(started) == 1
    entry, statements = _restarted(inbox.pk)
    assert not _loaded_every_row(statements)
    assert _state(entry) == _truth(inbox.pk)


def test_small_folders_and_unchanged_folders_get_no_file(inbox, alice, small_thresholds):
    services.store_flags(alice.id, inbox.pk, [(1, 5)], "add", ["\\Deleted"])
    services.expunge(alice.id, inbox.pk)
    deliver(alice, message(6))  # UIDNEXT 7, one message
    changed = Folder.objects.get(pk=inbox.pk).changed_at
    assert index.save_behind(changed) == 0
    assert index_file.read(inbox.pk) is None
    for n in (7, 8):
        deliver(alice, message(n))
    later = Folder.objects.get(pk=inbox.pk).changed_at
    assert index.save_behind(later) == 1
    assert index.save_behind(later + timedelta(seconds=1)) == 0  # changed before that


def test_no_files_are_kept_when_they_are_off(inbox, small_thresholds, settings):
    settings.IMAP_INDEX_DIR = None
    assert index.save_behind(Folder.objects.get(pk=inbox.pk).changed_at) == 0


@pytest.mark.parametrize("expunged", [3, 70])  # cut one by one; arrays rebuilt (over 64)
def test_expunges_leave_the_index_equal_to_the_store(alice, expunged):
    deliver_many(alice, 150)
    folder = Folder.objects.get(user_id=alice.id, name="INBOX")
    _current(folder.pk)  # loaded before the expunge, so the refresh applies it
    doomed = range(2, 2 + 2 * expunged, 2)  # every other message: holes, not one run
    services.store_flags(alice.id, folder.pk, [(uid, uid) for uid in doomed], "add", ["\\Deleted"])
    services.expunge(alice.id, folder.pk)
    entry = _current(folder.pk)
    assert _state(entry) == _truth(folder.pk)
    assert len(entry.uids) == len(entry.modseqs) == len(entry.flags) == 150 - expunged


def test_first_unseen_reads_the_seen_bit_alone():
    """SELECT's [UNSEEN n] (RFC 3501 §7.1): the first message without \\Seen, whatever
    its other flags; none when every message is read."""
    seen, answered, flagged = 1, 2, 4
    entry = index.Entry(
        1,
        uids=array("q", [4, 9, 12, 30]),
        flags=array("B", [seen | answered, seen, answered | flagged, seen]),
    )
    assert entry.first_unseen() == 12
    entry.flags = array("B", [seen] * 4)
    assert entry.first_unseen() is None


def test_the_periodic_task_keeps_files_for_mail_that_came_another_way(
    inbox, alice, small_thresholds
):
    """Mail appended or copied (not filed by the pipeline) gets its folder's file from
    the worker's periodic task (CELERY_BEAT_SCHEDULE "save-imap-indexes")."""
    from django.conf import settings

    from workers.tasks import save_imap_indexes

    assert settings.CELERY_BEAT_SCHEDULE["save-imap-indexes"]["task"] == "imap.save_indexes"
    assert index_file.read(inbox.pk) is None
    assert save_imap_indexes() == 1
    saved = index_file.read(inbox.pk)
    assert saved is not None and list(saved.uids) == [1, 2, 3, 4, 5]
