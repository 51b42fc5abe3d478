"""The folder index (apps.imap.index) stays equal to the store through deliveries, flag
changes, expunges and deletion, whoever makes them."""

from __future__ import annotations

import pytest

from apps.imap import index, query
from apps.mailstore import services, uidsets
from apps.mailstore.models import Folder, Message
from tests.imap.conftest import deliver, message


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
