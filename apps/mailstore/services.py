"""The only writers of the mail store. Each function is one transaction and publishes a
change event after it commits.

Order of durability for new mail: the blob is fsynced first (blobs.py), then the row is
committed with a synchronous commit; only then does a caller say 250 / OK. A crash between
the two leaves an unreferenced blob, never a row without its bytes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.dispatch import Signal
from django.utils import timezone

from apps.accounts.models import User
from apps.mailstore import blobs, events, fulltext, pgdelivery, plainsql, uidsets
from apps.mailstore.blobs import blob_store
from apps.mailstore.models import Account, Expunged, Folder, Message, Subscription

if TYPE_CHECKING:
    from apps.mailstore.mime import ParsedMessage

INBOX = "INBOX"
DELIMITER = "/"
DEFAULT_FOLDERS = [
    (INBOX, ""),
    ("Drafts", Folder.SpecialUse.DRAFTS),
    ("Sent", Folder.SpecialUse.SENT),
    ("Trash", Folder.SpecialUse.TRASH),
    ("Junk", Folder.SpecialUse.JUNK),
    ("Archive", Folder.SpecialUse.ARCHIVE),
]


class StoreError(Exception):
    """A request the store refuses; the message is fit to show a user."""


class QuotaExceeded(StoreError):
    pass


class FolderNotFound(StoreError):
    pass


class FolderExists(StoreError):
    pass


@dataclass(frozen=True)
class NewMessage:
    """A message whose bytes are durable in the blob store, or (`writing`) will be by
    the time a transaction that files it commits."""

    blob_key: str
    size: int
    parsed: ParsedMessage
    written: Future[str] | None = None  # a blob file being written
    data: bytes | None = None  # bytes for a StoredBlob row, written by `store_blob`

    @classmethod
    def from_bytes(cls, raw: bytes) -> NewMessage:
        from apps.mailstore.mime import parse_message  # parsing is only needed for new mail

        return cls(blob_store().put(raw), len(raw), parse_message(raw))

    @classmethod
    def writing(cls, raw: bytes) -> NewMessage:
        """As `from_bytes`, but durable only with the transaction that files it (which
        must call `store_blob`): a small message goes into that transaction as a
        StoredBlob row; a big one's file is written, and its fsyncs overlap the parse
        and the delivery's statements."""
        from apps.mailstore.mime import parse_message

        if blobs.in_database(len(raw)):
            key = hashlib.sha256(raw).hexdigest()
            return cls(key, len(raw), parse_message(raw), data=raw)
        key, written = blob_store().put_soon(raw)
        return cls(key, len(raw), parse_message(raw), written)

    def wait_file(self) -> None:
        """Return once a blob file being written is durable (at once if there is none);
        raise if writing it failed."""
        if self.written is not None:
            self.written.result()

    def store_blob(self) -> None:
        """Make the bytes durable with the current transaction, which commits rows naming
        them: write their StoredBlob row, or wait for their file. Raises if that fails,
        so the transaction rolls back."""
        if self.data is not None:
            blobs.keep_in_database(self.blob_key, self.data)
        self.wait_file()

    @classmethod
    def from_blob(cls, blob_key: str, size: int) -> NewMessage:
        """A message already in the blob store (accepted by SMTP), parsed now."""
        from apps.mailstore.mime import parse_message

        return cls(blob_key, size, parse_message(blob_store().read(blob_key)))


def before_write_lock(messages: Iterable[NewMessage]) -> None:
    """Call before the transaction that files `messages`. SQLite has one write lock for
    every process (SMTP's accepts wait on it too), so blob files finish now rather than
    while that lock is held; PostgreSQL's finish during the delivery's own statements."""
    if connection.vendor == "sqlite":
        for message in messages:
            message.wait_file()


@dataclass
class Delivery:
    delivered: list[tuple[int, int, int]] = field(default_factory=list)  # user, folder, uid
    over_quota: list[int] = field(default_factory=list)  # user ids


@dataclass
class FlagChange:
    changed: list[tuple[int, int, list[str]]] = field(default_factory=list)  # uid, modseq, flags
    conflicts: list[int] = field(default_factory=list)  # UNCHANGEDSINCE failures (RFC 7162)


# --- provisioning and folders ----------------------------------------------------------


def provision(user: User) -> None:
    """Give a new user their counters and the default folders (RFC 6154 special-use),
    subscribed as they are made (as Dovecot's auto-subscribe does): clients that show
    only subscribed folders show these."""
    with transaction.atomic():
        Account.objects.get_or_create(user=user, defaults={"next_uidvalidity": int(time.time())})
        for name, special_use in DEFAULT_FOLDERS:
            if not Folder.objects.filter(user=user, name=name).exists():
                _new_folder(user.pk, name, special_use)
                Subscription.objects.get_or_create(user=user, name=name)


def _new_folder(user_id: int, name: str, special_use: str = "") -> Folder:
    # UIDVALIDITY must never repeat for a name (RFC 9051 §2.3.1.1): a per-user counter
    # started at the creation time, so a folder deleted and re-created gets a new one.
    Account.objects.filter(user_id=user_id).update(next_uidvalidity=F("next_uidvalidity") + 1)
    uidvalidity = Account.objects.values_list("next_uidvalidity", flat=True).get(user_id=user_id)
    return Folder.objects.create(
        user_id=user_id,
        name=name,
        uidvalidity=uidvalidity % 2**32 or 1,
        special_use=special_use,
        changed_at=timezone.now(),
    )


def normalise_folder_name(name: str) -> str:
    """INBOX is case-insensitive (RFC 9051 §5.1); other names are kept as given."""
    name = name.strip(DELIMITER)
    head, sep, rest = name.partition(DELIMITER)
    return (INBOX + sep + rest) if head.upper() == INBOX else name


def _valid_name(name: str) -> str:
    """The normalised name, or StoreError if it is empty or has an empty level."""
    name = normalise_folder_name(name)
    if not name or any(not part for part in name.split(DELIMITER)):
        raise StoreError("Invalid folder name")
    return name


def get_folder(user_id: int, name: str) -> Folder:
    # A raw query still converts columns as the ORM does, without compiling one: SELECT,
    # APPEND and STATUS call this for every command (421 -> 98 us).
    found = Folder.objects.raw(
        f"SELECT * FROM {Folder._meta.db_table} WHERE user_id = %s AND name = %s",
        [user_id, normalise_folder_name(name)],
    )
    for folder in found:
        return folder
    raise FolderNotFound(f"No folder named {name}")


def folder_ids(user_id: int, name: str) -> tuple[int, int]:
    """(id, UIDVALIDITY) of the folder, or FolderNotFound. Two columns in plain SQL, where
    `get_folder` builds a model: APPEND and other per-command lookups need no more."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, uidvalidity FROM {Folder._meta.db_table} WHERE user_id = %s AND name = %s",
            [user_id, normalise_folder_name(name)],
        )
        found = cursor.fetchone()
    if found is None:
        raise FolderNotFound(f"No folder named {name}")
    return found[0], found[1]


def create_folder(user: User, name: str, special_use: str = "") -> Folder:
    """Create `name` and any missing parents (RFC 9051 §6.3.4); subscribes nothing."""
    name = _valid_name(name)
    with transaction.atomic():
        if Folder.objects.filter(user=user, name=name).exists():
            raise FolderExists(f"{name} already exists")
        parts = name.split(DELIMITER)
        for depth in range(1, len(parts)):
            parent = DELIMITER.join(parts[:depth])
            if not Folder.objects.filter(user=user, name=parent).exists():
                _new_folder(user.pk, parent)
        folder = _new_folder(user.pk, name, special_use)
    _publish_after_commit(user.pk, folder.pk)
    return folder


def delete_folder(user: User, name: str) -> None:
    """Delete a folder and its messages; children stay (RFC 9051 §6.3.5), and so does its
    subscription (RFC 3501 §6.3.6: never removed unilaterally)."""
    folder = get_folder(user.pk, name)
    if folder.name == INBOX:
        raise StoreError("INBOX cannot be deleted")
    with transaction.atomic():
        totals = folder.messages.aggregate(n=Count("id"), size=Sum("size"))
        _release_usage(user.pk, totals["size"] or 0, totals["n"])
        blob_keys = fulltext.folder_blob_keys(folder.pk)
        folder.delete()
        fulltext.forget(blob_keys)
    _publish_after_commit(user.pk, folder.pk)


def rename_folder(user: User, old: str, new: str) -> None:
    """Rename a folder with its children; renaming INBOX moves its messages (RFC 9051 §6.3.6).
    Subscriptions of the renamed names follow them (see `_rename_subscriptions`)."""
    source = get_folder(user.pk, old)
    new = normalise_folder_name(new)
    with transaction.atomic():
        if Folder.objects.filter(user=user, name=new).exists():
            raise FolderExists(f"{new} already exists")
        if source.name == INBOX:
            _move_inbox_contents(user, new)
            return
        prefix = source.name + DELIMITER
        for child in Folder.objects.filter(user=user, name__startswith=prefix):
            child.name = new + DELIMITER + child.name[len(prefix) :]
            child.save(update_fields=["name"])
        _rename_subscriptions(user, source.name, new)
        source.name = new
        source.changed_at = timezone.now()
        source.save(update_fields=["name", "changed_at"])
    _publish_after_commit(user.pk, source.pk)


def _move_inbox_contents(user: User, new: str) -> None:
    inbox = Folder.objects.select_for_update().get(user=user, name=INBOX)
    target = create_folder(user, new)
    uids = list(inbox.messages.values_list("uid", flat=True))
    inbox.messages.update(folder=target)
    Folder.objects.filter(pk=target.pk).update(
        uidnext=inbox.uidnext, highestmodseq=inbox.highestmodseq
    )
    modseq = _bump(inbox.pk, 0)[1]
    Expunged.objects.bulk_create(Expunged(folder=inbox, uid=u, modseq=modseq) for u in uids)
    _publish_after_commit(user.pk, inbox.pk)


def _rename_subscriptions(user: User, old: str, new: str) -> None:
    """The client renamed these names itself, so their subscriptions go with them, as
    Cyrus and Apache James do: a client showing only subscribed folders keeps showing
    them. This is not the unilateral removal RFC 3501 §6.3.6 forbids. A name already
    subscribed under the new name keeps its one row."""
    prefix = old + DELIMITER
    names = Subscription.objects.filter(user=user).filter(Q(name=old) | Q(name__startswith=prefix))
    for subscription in names:
        renamed = new + subscription.name[len(old) :]
        if Subscription.objects.filter(user=user, name=renamed).exists():
            subscription.delete()
        else:
            subscription.name = renamed
            subscription.save(update_fields=["name"])


def set_subscribed(user: User, name: str, subscribed: bool) -> None:
    """SUBSCRIBE / UNSUBSCRIBE (RFC 9051 §6.3.7-8): any name, whether or not a folder has
    it, and OK either way if it already was (or was not) subscribed."""
    if subscribed:
        Subscription.objects.get_or_create(user=user, name=_valid_name(name))
    else:
        Subscription.objects.filter(user=user, name=normalise_folder_name(name)).delete()


def subscribed_names(user_id: int) -> list[str]:
    """The user's subscription list, sorted."""
    return list(
        Subscription.objects.filter(user_id=user_id).order_by("name").values_list("name", flat=True)
    )


# --- new mail ------------------------------------------------------------------------------


def deliver(
    message: NewMessage,
    user_ids: Sequence[int],
    *,
    special_use: str = "",
    flags: Iterable[str] = (),
    internal_date: datetime | None = None,
    enforce_quota: bool = True,
) -> Delivery:
    """File one message for several users at once: INBOX, or their folder with `special_use`.

    A user whose quota it would exceed is skipped and reported; the others get it.
    """
    return deliver_many(
        [(message, user_ids)],
        special_use=special_use,
        flags=flags,
        internal_date=internal_date,
        enforce_quota=enforce_quota,
    )


def deliver_many(
    batch: Sequence[tuple[NewMessage, Sequence[int]]],
    *,
    special_use: str = "",
    flags: Iterable[str] = (),
    internal_date: datetime | None = None,
    enforce_quota: bool = True,
) -> Delivery:
    """Several deliveries in one transaction: one synchronous commit for the lot."""
    result = Delivery()
    flag_list = list(flags)
    # No savepoint of its own: a failure here fails the whole call, and a group commit
    # gives each of its units a savepoint when it needs one.
    with transaction.atomic(savepoint=False):
        for message, user_ids in batch:
            for n, user_id in enumerate(dict.fromkeys(user_ids)):
                placed = _deliver_one(
                    user_id, message, special_use, flag_list, internal_date, enforce_quota, n == 0
                )
                if placed is None:
                    result.over_quota.append(user_id)
                else:
                    result.delivered.append((user_id, *placed))
        for message, user_ids in batch:  # the rows name their blobs: durable with them
            if connection.vendor == "postgresql" and user_ids:
                message.wait_file()  # a StoredBlob row went with the first user's statement
            else:
                message.store_blob()
    for user_id, folder_id in {(u, f) for u, f, _ in result.delivered}:
        _publish_after_commit(user_id, folder_id)
    return result


def _deliver_one(
    user_id: int,
    message: NewMessage,
    special_use: str,
    flags: list[str],
    internal_date: datetime | None,
    enforce_quota: bool,
    keep_bytes: bool,
) -> tuple[int, int] | None:
    """Charge the quota, reserve a UID and insert the row: (folder id, uid), or None when
    over quota. One statement on PostgreSQL (pgdelivery), which with `keep_bytes` also
    writes the message's StoredBlob row if it has one; three plain ones on SQLite."""
    if connection.vendor == "postgresql":
        row = _row(0, 0, 0, message, flags, internal_date)
        kept = (message.blob_key, message.data) if keep_bytes and message.data is not None else None
        placed = pgdelivery.deliver(
            user_id, row, special_use=special_use, enforce_quota=enforce_quota, blob=kept
        )
        return None if placed is None else (placed[0], placed[1])
    if not _charge_quota(user_id, message.size, 1, enforce=enforce_quota):
        return None
    folder_id, uid, modseq = _reserve_delivery_uid(user_id, special_use)
    plainsql.insert(Message, _row(folder_id, uid, modseq, message, flags, internal_date))
    return folder_id, uid


def append(
    user: User,
    folder_name: str,
    message: NewMessage,
    flags: Iterable[str] = (),
    internal_date: datetime | None = None,
) -> tuple[int, int]:
    """IMAP APPEND: store into a named folder; returns (UIDVALIDITY, UID) for APPENDUID."""
    with transaction.atomic():
        folder = get_folder(user.pk, folder_name)
        if not _charge_quota(user.pk, message.size, 1):
            raise QuotaExceeded("Quota exceeded")
        uid, modseq = _bump(folder.pk, 1)
        Message.objects.create(**_row(folder.pk, uid, modseq, message, list(flags), internal_date))
        message.store_blob()
    _publish_after_commit(user.pk, folder.pk)
    return folder.uidvalidity, uid


FOLDER_TABLE = Folder._meta.db_table
MESSAGE_TABLE = Message._meta.db_table


def _reserve_delivery_uid(user_id: int, special_use: str) -> tuple[int, int, int]:
    """Find the folder new mail goes to (the special-use one if asked, else INBOX) and
    reserve a UID in it: (folder id, uid, modseq). See `_bump`.

    One UPDATE ... RETURNING finds and bumps the folder, as `_bump` does: this runs for
    every delivery on SQLite (PostgreSQL does it inside pgdelivery's one statement).
    """
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    bump = (
        f"UPDATE {FOLDER_TABLE} SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1, "
        "changed_at = %s WHERE id = (SELECT id FROM "
        f"{FOLDER_TABLE} WHERE user_id = %s AND {{}} = %s ORDER BY id LIMIT 1) "
        "RETURNING id, uidnext, highestmodseq"
    )
    with connection.cursor() as cursor:
        row = None
        if special_use:
            cursor.execute(bump.format("special_use"), [now, user_id, special_use])
            row = cursor.fetchone()
        if row is None:
            cursor.execute(bump.format("name"), [now, user_id, INBOX])
            row = cursor.fetchone()
    if row is None:
        raise Folder.DoesNotExist(f"user {user_id} has no INBOX")
    folder_id, uidnext, modseq = row
    return folder_id, uidnext - 1, modseq


def _charge_quota(user_id: int, size: int, count: int, enforce: bool = True) -> bool:
    """Add to the user's usage if it stays within quota (0 = no limit): one conditional
    UPDATE, so two deliveries racing for the last bytes cannot both win."""
    accounts, users = Account._meta.db_table, User._meta.db_table
    limit = f"(SELECT quota_bytes FROM {users} WHERE id = %s)"
    condition = f" AND ({limit} = 0 OR used_bytes + %s <= {limit})" if enforce else ""
    params = [size, count, user_id] + ([user_id, size, user_id] if enforce else [])
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {accounts} SET used_bytes = used_bytes + %s, "
            f"message_count = message_count + %s WHERE user_id = %s{condition}",
            params,
        )
        return cursor.rowcount == 1


def is_over_quota(user_id: int, fetch_one: plainsql.FetchOne = plainsql.fetch_one) -> bool:
    """Whether the user's mailbox is full (RCPT-time check, RFC 3463 4.2.2)."""
    row = fetch_one(  # one plain query: it runs for every RCPT
        f"SELECT u.quota_bytes, a.used_bytes FROM {User._meta.db_table} u "
        f"JOIN {Account._meta.db_table} a ON a.user_id = u.id WHERE u.id = %s",
        [user_id],
    )
    return row is not None and row[0] > 0 and row[1] >= row[0]


def _release_usage(user_id: int, size: int, count: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Account._meta.db_table} SET used_bytes = used_bytes - %s,"
            " message_count = message_count - %s WHERE user_id = %s",
            [size, count, user_id],
        )


def _bump(folder_id: int, uids: int) -> tuple[int, int]:
    """Reserve `uids` new UIDs and one new modseq in a folder; returns (first uid, modseq).

    The UPDATE locks the folder row until commit (SQLite: the whole database), so UIDs
    are unique and strictly increasing however many writers there are. One statement
    with RETURNING: APPEND, COPY and every flag change run it.
    """
    table = Folder._meta.db_table
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET uidnext = uidnext + %s, highestmodseq = highestmodseq + 1, "
            f"changed_at = %s WHERE id = %s RETURNING uidnext, highestmodseq",
            [uids, now, folder_id],
        )
        uidnext, modseq = cursor.fetchone()
    return uidnext - uids, modseq


def _row(
    folder_id: int,
    uid: int,
    modseq: int,
    message: NewMessage,
    flags: list[str],
    internal_date: datetime | None,
) -> dict:
    parsed = message.parsed
    return {
        "folder_id": folder_id,
        "uid": uid,
        "modseq": modseq,
        "internal_date": internal_date or timezone.now(),
        "size": message.size,
        "blob_key": message.blob_key,
        **_flag_fields(flags),
        **metadata_fields(parsed),
    }


def metadata_fields(parsed: ParsedMessage) -> dict:
    """The columns parsing fills once, at delivery."""
    return {
        "envelope": parsed.envelope,
        "body": parsed.body,
        "header_size": parsed.header_size,
        "subject": parsed.subject[:10000],
        "base_subject": parsed.base_subject[:10000],
        "from_addr": parsed.from_addr[:320],
        "from_name": parsed.from_name[:1000],
        "to_addr": parsed.to_addr[:320],
        "to_name": parsed.to_name[:1000],
        "cc_addr": parsed.cc_addr[:320],
        "sent_date": parsed.sent_date,
        "message_id": parsed.message_id[:998],
        "in_reply_to": parsed.in_reply_to[:10000],
        "references": " ".join(parsed.references)[:10000],
        "thread_id": thread_key(parsed),
    }


def thread_key(parsed: ParsedMessage) -> int:
    """A conversation id: the first message-id of the thread, hashed (RFC 5256 §2.2 roots
    threads at the first References entry)."""
    root = (parsed.references[:1] or [parsed.in_reply_to or parsed.message_id])[0]
    if not root:
        return 0
    return int.from_bytes(hashlib.sha256(root.encode()).digest()[:7], "big")


# --- flags, copy, move, expunge ----------------------------------------------------------


def _flag_fields(flags: Iterable[str]) -> dict:
    fields: dict = {column: False for column in Message.SYSTEM_FLAGS.values()}
    keywords = []
    for flag in flags:
        column = _system_flag(flag)
        if column:
            fields[column] = True
        elif flag and not flag.startswith("\\") and flag not in keywords:
            keywords.append(flag)
    fields["keywords"] = " " + "".join(k + " " for k in keywords)
    return fields


def _system_flag(flag: str) -> str | None:
    for name, column in Message.SYSTEM_FLAGS.items():
        if flag.lower() == name.lower():  # flags are case-insensitive (RFC 9051 §2.3.2)
            return column
    return None


def _apply_flags(current: list[str], mode: str, flags: list[str]) -> list[str]:
    lowered = {f.lower() for f in flags}
    if mode == "replace":
        return list(dict.fromkeys(flags))
    if mode == "add":
        return current + [f for f in flags if f.lower() not in {c.lower() for c in current}]
    return [f for f in current if f.lower() not in lowered]


def selected_messages(folder_id: int, ranges: uidsets.UidRanges) -> QuerySet[Message]:
    """Messages of a folder with UIDs in `ranges` (normalised), ordered by UID. A large,
    sparse set comes back as its whole span: callers check `uidsets.contains` per row."""
    messages = Message.objects.filter(folder_id=folder_id).order_by("uid")
    if len(ranges) <= uidsets.MAX_SQL_RANGES:
        return messages.filter(uidsets.uid_filter(ranges))
    return messages.filter(uidsets.span_filter(ranges))


def store_flags(
    user_id: int,
    folder_id: int,
    ranges: uidsets.UidRanges,
    mode: str,
    flags: Sequence[str],
    unchanged_since: int | None = None,
) -> FlagChange:
    """STORE: mode is "add", "remove" or "replace". Every message whose flags change gets
    the same new modseq (RFC 7162 §3.2); UNCHANGEDSINCE failures are reported, not changed."""
    result = FlagChange()
    ranges = uidsets.normalise(ranges)
    with transaction.atomic():
        pending = []
        for pk, uid, modseq, *state in _locked(folder_id, ranges):
            if unchanged_since is not None and modseq > unchanged_since:
                result.conflicts.append(uid)
                continue
            before = _flags_of_row(state)
            after = _apply_flags(before, mode, list(flags))
            if sorted(before) != sorted(after):
                pending.append((pk, uid, after))
        if pending:
            _, modseq = _bump(folder_id, 0)
            states: dict[tuple, list[int]] = {}
            for pk, uid, after in pending:
                new_state = tuple(_flag_fields(after).values())
                result.changed.append((uid, modseq, _flags_of_row(new_state)))
                states.setdefault(new_state, []).append(pk)
            _write_flags(states, modseq)
    if pending:
        _publish_after_commit(user_id, folder_id)
    return result


# Flag columns in _flag_fields order: the system flags, then keywords.
_FLAG_COLUMNS = [*Message.SYSTEM_FLAGS.values(), "keywords"]
_FLAG_ASSIGNMENTS = ", ".join(f"{column} = %s" for column in [*_FLAG_COLUMNS, "modseq"])


def _write_flags(states: dict[tuple, list[int]], modseq: int) -> None:
    """One plain UPDATE per distinct new flag state (a STORE mostly leaves all its
    messages alike): bulk_update's CASE per row cost more than the rest of STORE."""
    with connection.cursor() as cursor:
        for state, ids in states.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join(["%s"] * len(chunk))
                cursor.execute(
                    f"UPDATE {MESSAGE_TABLE} SET {_FLAG_ASSIGNMENTS} WHERE id IN ({marks})",
                    [*state, modseq, *chunk],
                )


def _locked(folder_id: int, ranges: uidsets.UidRanges) -> list[tuple]:
    """(id, uid, modseq, seen, answered, flagged, deleted, draft, keywords) of the messages
    in `ranges`, locked for update (SQLite's write transaction already holds the lock).
    Plain SQL: STORE runs this for nearly every command a client sends."""
    condition, params = uidsets.uid_sql(ranges)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, uid, modseq, {', '.join(_FLAG_COLUMNS)} FROM {MESSAGE_TABLE}"
            f" WHERE folder_id = %s AND {condition} ORDER BY uid{lock}",
            [folder_id, *params],
        )
        rows = cursor.fetchall()
    return [row for row in rows if uidsets.contains(ranges, row[1])]


def _flags_of_row(state: Sequence) -> list[str]:
    """The flag list of (seen, answered, flagged, deleted, draft, keywords)."""
    system = [flag for flag, on in zip(Message.SYSTEM_FLAGS, state, strict=False) if on]
    return system + state[-1].split()


def copy_messages(
    user_id: int,
    folder_id: int,
    ranges: uidsets.UidRanges,
    target_name: str,
    *,
    expunge_source: bool = False,
) -> tuple[int, list[int], list[int]]:
    """COPY (or MOVE with `expunge_source`): returns (target UIDVALIDITY, source UIDs,
    target UIDs) for COPYUID (RFC 4315 §3). The blobs are shared, not copied."""
    ranges = uidsets.normalise(ranges)
    with transaction.atomic():
        target = get_folder(user_id, target_name)
        sources = [
            m for m in selected_messages(folder_id, ranges) if uidsets.contains(ranges, m.uid)
        ]
        if not sources:
            return target.uidvalidity, [], []
        if not expunge_source and not _charge_quota(
            user_id, sum(m.size for m in sources), len(sources)
        ):
            raise QuotaExceeded("Quota exceeded")
        first_uid, modseq = _bump(target.pk, len(sources))
        copies = [_copy_row(m, target.pk, first_uid + i, modseq) for i, m in enumerate(sources)]
        Message.objects.bulk_create(copies, batch_size=500)
        if expunge_source:
            _expunge_rows(folder_id, sources, release_quota=False)
    _publish_after_commit(user_id, target.pk)
    if expunge_source:
        _publish_after_commit(user_id, folder_id)
    return target.uidvalidity, [m.uid for m in sources], [c.uid for c in copies]


def _copy_row(message: Message, folder_id: int, uid: int, modseq: int) -> Message:
    values = {f.attname: getattr(message, f.attname) for f in Message._meta.concrete_fields}
    values.update(id=None, folder_id=folder_id, uid=uid, modseq=modseq)
    return Message(**values)


def expunge(user_id: int, folder_id: int, ranges: uidsets.UidRanges | None = None) -> list[int]:
    """Remove messages marked \\Deleted (only those in `ranges` when given: UID EXPUNGE,
    RFC 4315 §2.1). Returns the expunged UIDs, ascending."""
    with transaction.atomic():
        with connection.cursor() as cursor:  # plain SQL: clients expunge often
            # "AND deleted" as the partial index message_deleted says it, so both
            # databases use that index (a bound True would not match its condition).
            cursor.execute(
                f"SELECT id, uid, size FROM {MESSAGE_TABLE}"
                " WHERE folder_id = %s AND deleted ORDER BY uid",
                [folder_id],
            )
            rows = [Doomed(*row) for row in cursor.fetchall()]
        if ranges is not None:
            normalised = uidsets.normalise(ranges)
            rows = [m for m in rows if uidsets.contains(normalised, m.uid)]
        if rows:
            _expunge_rows(folder_id, rows, release_quota=True, user_id=user_id)
    if rows:
        _publish_after_commit(user_id, folder_id)
    return [m.uid for m in rows]


class Doomed(NamedTuple):
    """What expunging needs of a message (a Message instance serves as well)."""

    pk: int
    uid: int
    size: int


def _expunge_rows(
    folder_id: int, rows: Sequence[Doomed | Message], *, release_quota: bool, user_id: int = 0
) -> None:
    _, modseq = _bump(folder_id, 0)
    ids = [m.pk for m in rows]
    blob_keys = fulltext.blob_keys_of(ids)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {Expunged._meta.db_table} (folder_id, uid, modseq) VALUES (%s, %s, %s)",
            [(folder_id, m.uid, modseq) for m in rows],
        )
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"DELETE FROM {MESSAGE_TABLE} WHERE id IN ({marks})", chunk)
    fulltext.forget(blob_keys)  # only those no other message (a copy) still refers to
    if release_quota:
        _release_usage(user_id, sum(m.size for m in rows), len(rows))


def claim_recent(folder_id: int) -> tuple[int, int]:
    """Claim the folder's messages no IMAP session has claimed as \\Recent yet, for the
    session that asks: UIDs from `low` up to, not including, `high` (none when equal).

    RFC 3501 §2.3.2: a message is \\Recent to the first session notified of it; "if the
    session is read-write, subsequent sessions will not see \\Recent set for this message".
    Claim before you work: one conditional UPDATE from the value just read, and the claim
    holds only if it changed the row; otherwise another session, in this process or
    another, claimed first, so read again and retry. No change event: \\Recent belongs to
    one session, and what every other session shows stays as it was.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        while True:
            cursor.execute(
                f"SELECT recent_uid, uidnext FROM {FOLDER_TABLE} WHERE id = %s", [folder_id]
            )
            found = cursor.fetchone()
            if found is None:
                raise FolderNotFound("The folder was deleted")
            low, high = found
            if low >= high:
                return high, high
            cursor.execute(
                f"UPDATE {FOLDER_TABLE} SET recent_uid = %s WHERE id = %s AND recent_uid = %s",
                [high, folder_id, low],
            )
            if cursor.rowcount == 1:
                return low, high


def _publish_after_commit(user_id: int, folder_id: int) -> None:
    transaction.on_commit(lambda: events.publish(events.Change(user_id, folder_id)))


def delete_messages(user_id: int, folder_id: int, uids: Sequence[int]) -> list[int]:
    """Expunge exactly these UIDs, whatever their flags (POP3 DELE at QUIT, RFC 1939 §6),
    in one transaction. Returns the UIDs that were still there."""
    ranges = uidsets.to_ranges(uids)
    with transaction.atomic():
        rows = [
            m
            for m in selected_messages(folder_id, ranges).only("pk", "uid", "size")
            if uidsets.contains(ranges, m.uid)
        ]
        if rows:
            _expunge_rows(folder_id, rows, release_quota=True, user_id=user_id)
    if rows:
        _publish_after_commit(user_id, folder_id)
    return [m.uid for m in rows]


# --- counters and spam training (added for IMAP STATUS / QUOTA and COPY / MOVE) -----------


@dataclass(frozen=True)
class FolderStatus:
    """Counters of one folder, for IMAP STATUS (RFC 9051 §6.3.11) and webmail lists."""

    messages: int
    unseen: int
    deleted: int
    size: int
    deleted_size: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int
    recent: int = 0  # not yet claimed as \Recent by an IMAP session (RFC 3501 §6.3.10)


def folder_status(
    user_id: int, name: str, sizes: bool = True, recent: bool = False
) -> FolderStatus:
    """Counts for a named folder; FolderNotFound if there is none. Without `sizes` (zero
    then), the counts come from the message_flags index alone: 100,000 messages in a few
    milliseconds rather than a read of every row (the sizes are only in the rows). With
    `recent`, the unclaimed messages too (zero otherwise)."""
    folder = get_folder(user_id, name)
    # Aliases must not shadow field names ("deleted", "size") used inside the aggregates.
    aggregates: dict[str, Any] = {
        "n_messages": Count("id"),
        "n_unseen": Count("id", filter=Q(seen=False)),
        "n_deleted": Count("id", filter=Q(deleted=True)),
    }
    if sizes:
        aggregates["total_size"] = Sum("size")
        aggregates["deleted_size"] = Sum("size", filter=Q(deleted=True))
    totals = folder.messages.aggregate(**aggregates)
    return FolderStatus(
        messages=totals["n_messages"],
        unseen=totals["n_unseen"],
        deleted=totals["n_deleted"],
        size=totals.get("total_size") or 0,
        deleted_size=totals.get("deleted_size") or 0,
        uidnext=folder.uidnext,
        uidvalidity=folder.uidvalidity,
        highestmodseq=folder.highestmodseq,
        recent=_unclaimed_count(folder) if recent else 0,
    )


def _unclaimed_count(folder: Folder) -> int:
    """Messages from recent_uid on: a range of the (folder, uid) index, as long as the
    unclaimed mail (a condition in the aggregate above cost every STATUS a sixth more)."""
    if folder.recent_uid >= folder.uidnext:
        return 0
    return folder.messages.filter(uid__gte=folder.recent_uid).count()


@dataclass(frozen=True)
class Usage:
    """What a user keeps against their quota (RFC 9208 STORAGE and MESSAGE resources)."""

    used_bytes: int
    message_count: int
    quota_bytes: int  # 0: no limit


def usage(user_id: int) -> Usage:
    used, count = Account.objects.values_list("used_bytes", "message_count").get(user_id=user_id)
    quota = User.objects.values_list("quota_bytes", flat=True).get(pk=user_id)
    return Usage(max(used, 0), max(count, 0), quota)


# Sent after commit when COPY or MOVE takes messages into the \Junk folder (spam=True) or
# out of it into anything but \Trash (spam=False): what a user's client does to say "this
# is spam" / "this is not". The spam trainer listens; kwargs: user_id, blob_keys, spam.
junk_training = Signal()


def file_messages(
    user_id: int,
    folder_id: int,
    ranges: uidsets.UidRanges,
    target_name: str,
    *,
    move: bool,
) -> tuple[int, list[int], list[int]]:
    """COPY (or MOVE) at a user's request: `copy_messages`, then the Junk training event."""
    source_use = Folder.objects.values_list("special_use", flat=True).get(pk=folder_id)
    target = get_folder(user_id, target_name)
    result = copy_messages(user_id, folder_id, ranges, target_name, expunge_source=move)
    junk, trash = Folder.SpecialUse.JUNK, Folder.SpecialUse.TRASH
    into_junk = target.special_use == junk and source_use != junk
    out_of_junk = source_use == junk and target.special_use not in (junk, trash)
    if result[2] and (into_junk or out_of_junk):
        copies = Message.objects.filter(uidsets.uid_filter(uidsets.to_ranges(result[2])))
        blob_keys = list(copies.filter(folder_id=target.pk).values_list("blob_key", flat=True))
        transaction.on_commit(
            lambda: junk_training.send(
                sender=Message, user_id=user_id, blob_keys=blob_keys, spam=into_junk
            )
        )
    return result


def append_many(
    user: User,
    folder_name: str,
    messages: Sequence[tuple[NewMessage, Iterable[str], datetime | None]],
) -> tuple[int, list[int]]:
    """IMAP MULTIAPPEND (RFC 3502 §3): all messages in one transaction, or none. Returns
    (UIDVALIDITY, UIDs) for APPENDUID (RFC 4315 §3)."""
    with transaction.atomic(savepoint=False):  # a failure fails the whole call
        folder_id, uidvalidity = folder_ids(user.pk, folder_name)
        if not _charge_quota(user.pk, sum(m.size for m, _, _ in messages), len(messages)):
            raise QuotaExceeded("Quota exceeded")
        first_uid, modseq = _bump(folder_id, len(messages))
        for i, (message, flags, date) in enumerate(messages):
            plainsql.insert(
                Message, _row(folder_id, first_uid + i, modseq, message, list(flags), date)
            )
        for message, _, _ in messages:
            message.store_blob()
    _publish_after_commit(user.pk, folder_id)
    return uidvalidity, [first_uid + i for i in range(len(messages))]
