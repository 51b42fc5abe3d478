"""One delivery in one PostgreSQL statement: quota, folder, UID, Message row and bytes.

On PostgreSQL every statement is a network round trip, and a delivery is three of them
(charge the quota, reserve a UID, insert the row). Data-modifying CTEs chain them in one
statement with the same locking and the same outcome as `services.deliver_many`'s steps:
the quota UPDATE is conditional, the folder UPDATE locks the row (so UIDs stay unique and
increasing) and the row goes in with the UID that UPDATE returned; a small message's
bytes (its StoredBlob row) ride along. SQLite has no such CTEs; it takes the separate
statements, which cost it no round trip.
"""

from __future__ import annotations

from functools import cache

from django.db import connection
from django.utils import timezone

from apps.accounts.models import User
from apps.mailstore import plainsql
from apps.mailstore.blobs import keep_statement
from apps.mailstore.models import Account, Folder, Message

INBOX = "INBOX"
_PLACED = ("folder_id", "uid", "modseq")  # what the statement itself decides


@cache
def _statement(enforce_quota: bool, keep_blob: bool) -> tuple[str, list]:
    fields = [f for f in Message._meta.concrete_fields if not f.primary_key]
    rest = [f for f in fields if f.attname not in _PLACED]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in [*_fields(_PLACED), *rest])
    # Typed placeholders: in INSERT ... SELECT, PostgreSQL does not take the types from
    # the target columns.
    values = ", ".join(f"%(v{i})s::{f.db_type(connection)}" for i, f in enumerate(rest))
    users, accounts = User._meta.db_table, Account._meta.db_table
    folders, messages = Folder._meta.db_table, Message._meta.db_table
    quota = f"(SELECT quota_bytes FROM {users} WHERE id = %(user)s)"
    within = f" AND ({quota} = 0 OR used_bytes + %(size)s <= {quota})" if enforce_quota else ""
    # The message's bytes, when they are kept in the database, go in with the first
    # user's delivery (as blobs.keep_in_database does it); a no-op CTE otherwise.
    kept = (
        keep_statement("%(blob_key)s", "%(blob_data)s", "%(now)s") + " RETURNING 1"
        if keep_blob
        else "SELECT 1"
    )
    sql = f"""
        WITH kept AS ({kept}), charged AS (
            UPDATE {accounts} SET used_bytes = used_bytes + %(size)s,
                message_count = message_count + 1
            WHERE user_id = %(user)s{within} RETURNING 1
        ), target AS (
            SELECT id FROM {folders} WHERE user_id = %(user)s
                AND ((%(special_use)s <> '' AND special_use = %(special_use)s) OR name = %(inbox)s)
            ORDER BY (name = %(inbox)s), id LIMIT 1
        ), bumped AS (
            UPDATE {folders} f SET uidnext = f.uidnext + 1,
                highestmodseq = f.highestmodseq + 1, changed_at = %(now)s
            FROM target WHERE f.id = target.id AND EXISTS (SELECT 1 FROM charged)
            RETURNING f.id, f.uidnext - 1 AS uid, f.highestmodseq AS modseq
        ), inserted AS (
            INSERT INTO {messages} ({columns})
            SELECT bumped.id, bumped.uid, bumped.modseq, {values} FROM bumped
            RETURNING folder_id, uid, modseq
        )
        SELECT (SELECT count(*) FROM charged), folder_id, uid, modseq
        FROM (SELECT 1) one LEFT JOIN inserted ON true
    """
    return sql, rest


def _fields(names: tuple[str, ...]) -> list:
    return [Message._meta.get_field(name.removesuffix("_id")) for name in names]


def deliver(
    user_id: int,
    row: dict,
    *,
    special_use: str,
    enforce_quota: bool,
    blob: tuple[str, bytes] | None = None,
) -> tuple[int, int, int] | None:
    """File `row` (a Message row without folder, UID and modseq) for the user; returns
    (folder id, uid, modseq), or None when it would exceed the quota. `blob` (key, bytes)
    is stored as a StoredBlob row in the same statement."""
    sql, rest = _statement(enforce_quota, blob is not None)
    params: dict = {
        "user": user_id,
        "size": row["size"],
        "special_use": special_use,
        "inbox": INBOX,
        "now": timezone.now(),
    }
    if blob is not None:
        params["blob_key"], params["blob_data"] = blob
    for i, f in enumerate(rest):
        params[f"v{i}"] = f.get_db_prep_save(plainsql.field_value(f, row), connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        charged, folder_id, uid, modseq = cursor.fetchone()
    if not charged:
        return None
    if folder_id is None:
        raise Folder.DoesNotExist(f"user {user_id} has no INBOX")
    return folder_id, uid, modseq
