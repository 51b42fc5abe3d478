"""The store's writers: folders, delivery, quota, flags, copy, move, expunge."""

from __future__ import annotations

import hashlib

import pytest
from django.db import transaction

from apps.accounts.models import User
from apps.mailstore import blobs, groupcommit, services
from apps.mailstore.blobs import blob_store
from apps.mailstore.models import Account, Expunged, Folder, Message, StoredBlob, Subscription

ALL = [(1, 2**31)]


def message(n: int = 1, size: int = 0) -> services.NewMessage:
    raw = (
        f"From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: Hello {n}\r\n"
        f"Message-ID: <m{n}@example.org>\r\n\r\nBody {n}\r\n" + "y" * size
    ).encode()
    return services.NewMessage.from_bytes(raw)


def inbox(persona) -> Folder:
    return Folder.objects.get(user_id=persona.id, name="INBOX")


def test_a_new_user_has_the_default_folders_with_special_use(alice):
    folders = dict(Folder.objects.filter(user_id=alice.id).values_list("name", "special_use"))
    assert folders == {
        "INBOX": "",
        "Drafts": "\\Drafts",
        "Sent": "\\Sent",
        "Trash": "\\Trash",
        "Junk": "\\Junk",
        "Archive": "\\Archive",
    }
    validities = Folder.objects.filter(user_id=alice.id).values_list("uidvalidity", flat=True)
    assert len(set(validities)) == 6
    # Subscribed as they are made, as Dovecot's auto-subscribe does.
    assert set(services.subscribed_names(alice.id)) == set(folders)


def test_deliveries_get_increasing_uids_and_modseqs(alice):
    for n in range(1, 4):
        services.deliver(message(n), [alice.id])
    rows = list(Message.objects.filter(folder=inbox(alice)).order_by("uid"))
    assert [m.uid for m in rows] == [1, 2, 3]
    assert rows[0].modseq < rows[1].modseq < rows[2].modseq
    assert inbox(alice).uidnext == 4
    assert inbox(alice).highestmodseq == rows[2].modseq
    assert rows[0].subject == "Hello 1" and rows[0].from_addr == "bob@example.org"


def test_one_delivery_to_several_users_stores_the_bytes_once(personas):
    alice, bob = personas["alice"], personas["bob"]
    blobs_before = len(list(blob_store().root.glob("??/*")))
    new = message(size=12345)
    result = services.deliver(new, [alice.id, bob.id, alice.id])
    assert len(result.delivered) == 2
    keys = set(Message.objects.values_list("blob_key", flat=True))
    assert keys == {new.blob_key}
    assert blob_store().read(new.blob_key).startswith(b"From: Bob")
    assert len(list(blob_store().root.glob("??/*"))) <= blobs_before + 1


def test_a_delivery_over_quota_is_refused_and_changes_nothing(personas):
    alice, bob = personas["alice"], personas["bob"]
    User.objects.filter(pk=alice.id).update(quota_bytes=5000)
    services.deliver(message(1, size=3000), [alice.id])
    before = Account.objects.get(user_id=alice.id).used_bytes
    result = services.deliver(message(2, size=3000), [alice.id, bob.id])
    assert result.over_quota == [alice.id]
    assert [u for u, _, _ in result.delivered] == [bob.id]
    assert Message.objects.filter(folder=inbox(alice)).count() == 1
    assert Account.objects.get(user_id=alice.id).used_bytes == before
    assert inbox(alice).uidnext == 2


BIG_BODY = b"A line of a big message, kept in a file of the blob store.\r\n" * 3000


def test_a_big_message_written_alongside_is_durable_before_its_delivery_returns(alice):
    raw = b"From: bob@example.org\r\nSubject: Soon\r\n\r\n" + BIG_BODY
    assert not blobs.in_database(len(raw))
    new = services.NewMessage.writing(raw)
    services.deliver(new, [alice.id])
    assert new.written is not None and new.written.done()
    assert blob_store().path(new.blob_key).read_bytes() == raw


def test_a_small_message_is_kept_in_the_database_with_its_delivery(alice):
    raw = b"From: bob@example.org\r\nSubject: Small\r\n\r\nNo file of its own.\r\n"
    new = services.NewMessage.writing(raw)
    services.deliver(new, [alice.id])
    assert not blob_store().path(new.blob_key).exists()
    assert StoredBlob.objects.get(key=new.blob_key).stored_at is not None
    assert blob_store().read(new.blob_key) == raw
    assert blob_store().read_range(new.blob_key, 6, 15) == b"bob@example.org"
    assert b"".join(blob_store().iter_chunks(new.blob_key, size=7)) == raw
    with blob_store().open(new.blob_key) as stream:
        assert stream.read() == raw
    # The same bytes delivered again (a second copy, another user) share the row.
    services.deliver(services.NewMessage.writing(raw), [alice.id])
    assert StoredBlob.objects.filter(key=new.blob_key).count() == 1
    assert Message.objects.filter(folder=inbox(alice), blob_key=new.blob_key).count() == 2


def test_a_small_message_whose_delivery_rolls_back_leaves_no_stored_bytes(alice):
    """The StoredBlob row belongs to the delivery's transaction: gone with it."""
    raw = b"From: bob@example.org\r\nSubject: Undone\r\n\r\nRolled back.\r\n"
    with pytest.raises(RuntimeError), transaction.atomic():
        services.deliver(services.NewMessage.writing(raw), [alice.id])
        assert StoredBlob.objects.count() == 1
        raise RuntimeError("the transaction fails after the delivery")
    assert not StoredBlob.objects.exists() and not Message.objects.exists()
    assert not blob_store().exists(hashlib.sha256(raw).hexdigest())


def test_a_blob_that_cannot_be_written_fails_its_delivery(alice, settings, tmp_path):
    """The row must never commit without its blob: a write failing on the writer thread
    rolls back the delivery (and a group commit's unit) that named it."""
    settings.BLOB_DIR = tmp_path / "blobs"
    raw = b"From: bob@example.org\r\nSubject: Lost\r\n\r\n" + BIG_BODY
    key = hashlib.sha256(raw).hexdigest()
    blob_store()  # makes the store's directories
    (tmp_path / "blobs" / key[:2]).write_bytes(b"a file where the directory should be")
    with pytest.raises(OSError):
        groupcommit.run(lambda: services.deliver(services.NewMessage.writing(raw), [alice.id]))
    assert not Message.objects.filter(folder=inbox(alice)).exists()
    assert Account.objects.get(user_id=alice.id).used_bytes == 0
    assert inbox(alice).uidnext == 1


def test_append_over_quota_raises_a_clear_error(alice):
    User.objects.filter(pk=alice.id).update(quota_bytes=100)
    with pytest.raises(services.QuotaExceeded, match="Quota exceeded"):
        services.append(alice.user, "Drafts", message(1, size=200))
    assert not Message.objects.exists()


def test_delivery_to_the_junk_special_use_folder(alice):
    services.deliver(message(), [alice.id], special_use="\\Junk")
    assert Message.objects.get().folder.name == "Junk"


def test_store_flags_add_remove_replace_and_bump_modseq(alice):
    services.deliver(message(1), [alice.id])
    services.deliver(message(2), [alice.id])
    folder = inbox(alice)
    changed = services.store_flags(alice.id, folder.pk, [(1, 2)], "add", ["\\Seen", "$Work"])
    assert [(uid, flags) for uid, _, flags in changed.changed] == [
        (1, ["\\Seen", "$Work"]),
        (2, ["\\Seen", "$Work"]),
    ]
    modseq = changed.changed[0][1]
    assert modseq > folder.highestmodseq
    again = services.store_flags(alice.id, folder.pk, [(1, 1)], "add", ["\\seen"])
    assert again.changed == []  # nothing changed, no new modseq
    removed = services.store_flags(alice.id, folder.pk, [(2, 2)], "remove", ["$work"])
    assert removed.changed[0][2] == ["\\Seen"]
    replaced = services.store_flags(alice.id, folder.pk, [(1, 1)], "replace", ["\\Flagged"])
    assert replaced.changed[0][2] == ["\\Flagged"]
    assert Message.objects.filter(seen=True).count() == 1


def test_unchangedsince_refuses_messages_changed_later(alice):
    services.deliver(message(1), [alice.id])
    services.deliver(message(2), [alice.id])
    folder = inbox(alice)
    first = Message.objects.get(uid=1).modseq
    result = services.store_flags(
        alice.id, folder.pk, ALL, "add", ["\\Seen"], unchanged_since=first
    )
    assert result.conflicts == [2]
    assert [uid for uid, _, _ in result.changed] == [1]


def test_copy_gives_new_uids_shares_blobs_and_counts_quota(alice):
    for n in range(3):
        services.deliver(message(n), [alice.id])
    validity, source, target = services.copy_messages(
        alice.id, inbox(alice).pk, [(2, 3)], "Archive"
    )
    archive = Folder.objects.get(user_id=alice.id, name="Archive")
    assert (validity, source, target) == (archive.uidvalidity, [2, 3], [1, 2])
    assert Message.objects.filter(folder=archive).count() == 2
    assert Account.objects.get(user_id=alice.id).message_count == 5


def test_move_expunges_the_source_with_tombstones(alice):
    for n in range(3):
        services.deliver(message(n), [alice.id])
    folder = inbox(alice)
    services.copy_messages(alice.id, folder.pk, [(1, 1), (3, 3)], "Trash", expunge_source=True)
    assert list(Message.objects.filter(folder=folder).values_list("uid", flat=True)) == [2]
    assert sorted(Expunged.objects.filter(folder=folder).values_list("uid", flat=True)) == [1, 3]
    assert Account.objects.get(user_id=alice.id).message_count == 3


def test_expunge_removes_only_deleted_messages_in_the_given_set(alice):
    for n in range(4):
        services.deliver(message(n), [alice.id])
    folder = inbox(alice)
    services.store_flags(alice.id, folder.pk, [(1, 3)], "add", ["\\Deleted"])
    assert services.expunge(alice.id, folder.pk, [(2, 4)]) == [2, 3]
    assert services.expunge(alice.id, folder.pk) == [1]
    assert list(Message.objects.values_list("uid", flat=True)) == [4]
    tomb = Expunged.objects.filter(folder=folder).order_by("uid")
    assert [t.uid for t in tomb] == [1, 2, 3]
    assert Account.objects.get(user_id=alice.id).message_count == 1


def test_create_rename_and_delete_folders(alice):
    services.create_folder(alice.user, "Projects/2026/Q4")
    names = set(Folder.objects.filter(user_id=alice.id).values_list("name", flat=True))
    assert {"Projects", "Projects/2026", "Projects/2026/Q4"} <= names
    with pytest.raises(services.FolderExists):
        services.create_folder(alice.user, "Projects")
    services.rename_folder(alice.user, "Projects", "Work")
    names = set(Folder.objects.filter(user_id=alice.id).values_list("name", flat=True))
    assert {"Work", "Work/2026", "Work/2026/Q4"} <= names and "Projects" not in names
    services.delete_folder(alice.user, "Work/2026/Q4")
    assert not Folder.objects.filter(user_id=alice.id, name="Work/2026/Q4").exists()
    with pytest.raises(services.StoreError):
        services.delete_folder(alice.user, "inbox")


def test_renaming_inbox_moves_its_messages_and_leaves_it_empty(alice):
    services.deliver(message(1), [alice.id])
    services.rename_folder(alice.user, "INBOX", "Old mail")
    assert Message.objects.get().folder.name == "Old mail"
    assert inbox(alice).messages.count() == 0
    services.deliver(message(2), [alice.id])
    assert inbox(alice).messages.get().uid == 2  # UIDs never go back


def test_a_recreated_folder_gets_a_new_uidvalidity(alice):
    first = services.create_folder(alice.user, "Temp").uidvalidity
    services.delete_folder(alice.user, "Temp")
    assert services.create_folder(alice.user, "Temp").uidvalidity != first


def test_each_new_message_is_claimed_as_recent_once(alice):
    """RFC 3501 §2.3.2: \\Recent goes to one session; the store hands each UID out once."""
    for n in range(1, 3):
        services.deliver(message(n), [alice.id])
    folder_id = inbox(alice).pk
    assert services.claim_recent(folder_id) == (1, 3)
    assert services.claim_recent(folder_id) == (3, 3)  # nothing left for a second session
    services.deliver(message(3), [alice.id])
    assert services.claim_recent(folder_id) == (3, 4)


def test_copies_are_unclaimed_in_their_new_folder(alice):
    """RFC 3501 §6.4.7: a copy is \\Recent in the folder it went to."""
    services.deliver(message(1), [alice.id])
    services.claim_recent(inbox(alice).pk)
    services.copy_messages(alice.id, inbox(alice).pk, ALL, "Archive")
    archive = Folder.objects.get(user_id=alice.id, name="Archive")
    assert services.claim_recent(archive.pk) == (1, 2)


def test_status_counts_the_messages_no_session_has_claimed(alice):
    """RFC 3501 §6.3.10 STATUS RECENT, as Dovecot counts it: not yet claimed by anyone."""
    services.deliver(message(1), [alice.id])
    services.claim_recent(inbox(alice).pk)
    services.deliver(message(2), [alice.id])
    services.deliver(message(3), [alice.id])
    assert services.folder_status(alice.id, "INBOX", recent=True).recent == 2
    assert services.folder_status(alice.id, "INBOX", sizes=False, recent=True).recent == 2


def test_subscriptions_are_names_apart_from_folders(alice):
    """RFC 3501 §6.3.6: a name may be subscribed without a folder and stays subscribed
    when its folder goes; CREATE subscribes nothing (RFC 3501 §6.3.3)."""
    services.create_folder(alice.user, "Lists/Python")
    services.set_subscribed(alice.user, "Lists/Python", True)
    services.set_subscribed(alice.user, "Later", True)
    services.set_subscribed(alice.user, "inbox", False)  # INBOX in any case (RFC 9051 §5.1)
    services.delete_folder(alice.user, "Lists/Python")
    names = services.subscribed_names(alice.id)
    assert names == ["Archive", "Drafts", "Junk", "Later", "Lists/Python", "Sent", "Trash"]
    assert Subscription.objects.filter(user_id=alice.id, name="Lists").count() == 0


def test_rename_moves_the_subscriptions_under_the_old_name(alice):
    services.create_folder(alice.user, "Old/Child")
    for name in ("Old", "Old/Child", "Old/Gone", "Older"):
        services.set_subscribed(alice.user, name, True)
    services.set_subscribed(alice.user, "New/Gone", True)  # already there: kept once
    services.rename_folder(alice.user, "Old", "New")
    names = [n for n in services.subscribed_names(alice.id) if n[0] in "NO"]
    assert names == ["New", "New/Child", "New/Gone", "Older"]
