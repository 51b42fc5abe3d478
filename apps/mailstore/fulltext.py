"""The search index behind IMAP SEARCH BODY, TEXT and header keys (RFC 9051 §6.4.4).

One row per blob (content-addressed, so a message delivered to ten users or copied to
three folders is indexed once), removed in the transaction that expunges its last message.
Rows are written off the delivery path, which they would slow down threefold (a trigram
index of a 4 KB body costs more than filing the message): the inbound pipeline indexes
each batch right after filing it, a periodic task catches up after IMAP APPEND, and every
search first indexes what its folder received since `Folder.indexed_uid` (`catch_up`),
so no search ever misses a message. A row keeps, lower-cased and with runs of white space
made one space:
  header   every top-level header field as "\\nname: value", RFC 2047 words decoded,
           then From, To, Cc and Bcc again as their parsed addresses (`with_addresses`);
  body     the decoded text of the text/* parts (`ParsedMessage.text`);
  sent_day the Date: field's own calendar day, "YYYY-MM-DD" (SENTON & co. compare that
           day "disregarding time and timezone", which `Message.sent_date` in UTC has lost).

IMAP asks for case-insensitive substrings, not words, so both databases use trigram
indexes, which answer substring patterns exactly: SQLite an FTS5 table with the trigram
tokenizer over this one (external content, detail=none: the index holds no positions and
SQLite re-checks each candidate against the stored text); PostgreSQL GIN indexes with
pg_trgm's gin_trgm_ops, re-checked the same way. A needle shorter than three characters
cannot use a trigram index, so it reads the stored text of the searched folder only.
Searches return Q objects over Message that reach the rows through `blob_key`.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from django.db import connection, transaction
from django.db.models import BigIntegerField, CharField, Q
from django.db.models.expressions import RawSQL

from apps.mailstore import groupcommit
from apps.mailstore.blobs import blob_store

if TYPE_CHECKING:
    from apps.mailstore.mime import ParsedMessage

TABLE = "mailstore_fulltext"
FTS_TABLE = "mailstore_fulltext_fts"  # SQLite only
MESSAGE_TABLE = "mailstore_message"
FOLDER_TABLE = "mailstore_folder"
CATCH_UP_CHUNK = 500  # blobs indexed per transaction when a folder catches up
HEADER_LIMIT = 256 * 1024  # octets of header indexed; past this it is spam, not mail
BATCH = 500  # keys per statement, well under SQLite's parameter limit

# Fields searched as parsed addresses too (RFC 9051 §6.4.4 FROM, TO, CC, BCC); the names
# are those of ParsedMessage.envelope and of the fields themselves.
ADDRESS_FIELDS = ("from", "to", "cc", "bcc")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 §2.2 ftext: printable ASCII but ":"


@dataclass(frozen=True, slots=True)
class Document:
    """What one blob contributes to the index."""

    header: str
    body: str
    sent_day: str | None


# --- building documents ------------------------------------------------------------------


def normalise(text: str) -> str:
    """Lower-case, white space runs as one space, no NUL: how both text and needles are
    compared, so a search string also matches across a wrapped line."""
    # str.split() splits on exactly the characters re's \s matches, four times faster.
    return " ".join(text.replace("\x00", " ").split()).lower()


def header_text(block: bytes) -> str:
    """A header block as "\\nname: value" lines, decoded and normalised, ending in "\\n"."""
    from apps.mailstore.mime import decode_words, split_header  # only needed for new mail

    lines = []
    for found in split_header(block[:HEADER_LIMIT]):
        value = decode_words(found.value.decode("utf-8", "replace"))
        lines.append(f"\n{normalise(found.name)}: {normalise(value)}")
    return "".join(lines) + "\n"


def sent_day(value: str | None) -> str | None:
    """The calendar day written in a Date: field (RFC 5322 §3.3), or None if unreadable."""
    parsed = email.utils.parsedate_tz(value) if value else None
    if parsed is None:
        return None
    try:
        return date(parsed[0], parsed[1], parsed[2]).isoformat()
    except (TypeError, ValueError, OverflowError):
        return None


def with_addresses(header: str, envelope: dict[str, Any]) -> str:
    """`header` (from header_text) with the address fields once more as lines of their
    parsed addresses (mime.addresses_text), so FROM/TO/CC/BCC also find an address the
    field writes with comments or folding inside it, or a name in RFC 2047 words. Each
    line takes its field's name, so the same "\\nname: ...needle" pattern finds either;
    a line the header already holds as written is not repeated."""
    from apps.mailstore.mime import addresses_text

    for field in ADDRESS_FIELDS:
        text = normalise(addresses_text(envelope.get(field)))
        if text and f"\n{field}: {text}\n" not in header:
            header += f"{field}: {text}\n"
    return header


def document(header_block: bytes, parsed: ParsedMessage) -> Document:
    return Document(
        header=with_addresses(header_text(header_block), parsed.envelope),
        body=normalise(parsed.text),
        sent_day=sent_day(parsed.envelope.get("date")),
    )


# --- writing ------------------------------------------------------------------------------


def index_parsed(messages: Iterable[tuple[str, ParsedMessage]]) -> int:
    """Index these (blob key, parse) pairs unless they already are: the inbound
    pipeline's step after filing a batch, while the parse is at hand. The documents are
    built first and the rows written through the group committer, so the write lock is
    held for the inserts alone and shared with concurrent writers' commit."""
    documents = [
        (blob_key, document(parsed.header, parsed))
        for blob_key, parsed in dict(messages).items()
        if not _indexed(blob_key)
    ]
    if documents:
        groupcommit.run(lambda: _insert_all(documents))
    return len(documents)


def _insert_all(documents: list[tuple[str, Document]]) -> None:
    for blob_key, doc in documents:
        _insert(blob_key, doc)  # a row written meanwhile by another worker stays as it is


def catch_up(folder_id: int) -> int:
    """Index what the folder received since its mark (`Folder.indexed_uid`), then move the
    mark; returns how many blobs were indexed. UIDs only grow and a folder's UIDs are
    handed out in commit order (the folder row is locked until commit), so every message
    at or below the mark has its row. When nothing is new this is one indexed query."""
    span = _unindexed_span(folder_id)
    if span is None:
        return 0
    mark, top = span
    done = 0
    while keys := _unindexed_keys(folder_id, mark, top):
        with transaction.atomic():  # in chunks: a big backlog never holds the lock long
            for key in keys:
                _insert(key, _document_of_blob(key))
        done += len(keys)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {FOLDER_TABLE} SET indexed_uid = %s WHERE id = %s AND indexed_uid < %s",
            [top, folder_id, top],
        )
    return done


def folders_behind() -> list[int]:
    """Folders holding messages above their mark (APPENDed mail, say), for the periodic
    catch-up."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {FOLDER_TABLE} WHERE indexed_uid < uidnext - 1")
        return [row[0] for row in cursor.fetchall()]


def _unindexed_span(folder_id: int) -> tuple[int, int] | None:
    """(mark, highest UID above it), or None when the folder has nothing above its mark."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT f.indexed_uid, (SELECT MAX(m.uid) FROM {MESSAGE_TABLE} m"
            f" WHERE m.folder_id = f.id AND m.uid > f.indexed_uid) FROM {FOLDER_TABLE} f"
            " WHERE f.id = %s",
            [folder_id],
        )
        row = cursor.fetchone()
    if row is None or row[1] is None:
        return None
    return row[0], row[1]


def _unindexed_keys(folder_id: int, mark: int, top: int) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT m.blob_key FROM {MESSAGE_TABLE} m"
            " WHERE m.folder_id = %s AND m.uid > %s AND m.uid <= %s AND NOT EXISTS"
            f" (SELECT 1 FROM {TABLE} t WHERE t.blob_key = m.blob_key) LIMIT %s",
            [folder_id, mark, top, CATCH_UP_CHUNK],
        )
        return [row[0] for row in cursor.fetchall()]


def _indexed(blob_key: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {TABLE} WHERE blob_key = %s", [blob_key])
        return cursor.fetchone() is not None


def _document_of_blob(blob_key: str) -> Document:
    from apps.mailstore.mime import parse_message

    try:
        raw = blob_store().read(blob_key)
    except FileNotFoundError:
        return Document("", "", None)  # nothing to find in it; FETCH reports the loss
    parsed = parse_message(raw)
    return document(parsed.header, parsed)


def _insert(blob_key: str, doc: Document) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (blob_key, header, body, sent_day) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (blob_key) DO NOTHING",
            [blob_key, doc.header, doc.body, doc.sent_day],
        )


def blob_keys_of(message_ids: Iterable[int]) -> set[str]:
    """Blob keys of these Message rows (taken before they are deleted)."""
    ids = list(message_ids)
    keys: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"SELECT blob_key FROM {MESSAGE_TABLE} WHERE id IN ({marks})", chunk)
            keys.update(row[0] for row in cursor.fetchall())
    return keys


def folder_blob_keys(folder_id: int) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT blob_key FROM {MESSAGE_TABLE} WHERE folder_id = %s", [folder_id])
        return {row[0] for row in cursor.fetchall()}


def forget(blob_keys: Iterable[str]) -> int:
    """Drop the rows of these blobs that no message refers to any more; how many went."""
    keys = sorted(set(blob_keys))
    removed = 0
    with connection.cursor() as cursor:
        for start in range(0, len(keys), BATCH):
            chunk = keys[start : start + BATCH]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"DELETE FROM {TABLE} WHERE blob_key IN ({marks}) AND NOT EXISTS"
                f" (SELECT 1 FROM {MESSAGE_TABLE} m WHERE m.blob_key = {TABLE}.blob_key)",
                chunk,
            )
            removed += max(cursor.rowcount, 0)
    return removed


def sweep() -> int:
    """Drop every row no message refers to (after a user's folders went by cascade)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {TABLE} WHERE NOT EXISTS"
            f" (SELECT 1 FROM {MESSAGE_TABLE} m WHERE m.blob_key = {TABLE}.blob_key)"
        )
        return max(cursor.rowcount, 0)


def index_missing() -> int:
    """Index every stored message that has no row yet, whatever the folders' marks say
    (messages restored from a backup, say), reading and parsing their blobs. Returns how
    many."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT m.blob_key FROM {MESSAGE_TABLE} m WHERE NOT EXISTS"
            f" (SELECT 1 FROM {TABLE} t WHERE t.blob_key = m.blob_key)"
        )
        keys = [row[0] for row in cursor.fetchall()]
    for key in keys:
        _insert(key, _document_of_blob(key))
    return len(keys)


# --- searching: Q objects over Message ----------------------------------------------------

ALWAYS = Q(pk__isnull=False)
NEVER = Q(pk__in=[])
MIN_INDEXED = 3  # a trigram index can look up nothing shorter
_DAY_OPERATORS = {"before": "<", "on": "=", "since": ">="}
# Where each SQL condition is written: "f" is the FTS5 table (SQLite), "t" the table.
Where = Callable[[str], tuple[str, list[Any]]]


def body_contains(folder_id: int, needle: str) -> Q:
    """RFC 9051 §6.4.4 BODY: the body's text contains `needle`, case-insensitively."""
    catch_up(folder_id)
    needle = normalise(needle)
    if not needle:
        return ALWAYS
    return _matching(folder_id, needle, lambda on: _contains(on, "body", [needle]))


def text_contains(folder_id: int, needle: str) -> Q:
    """RFC 9051 §6.4.4 TEXT: the header or the body contains `needle` (body_contains
    catches the folder up; the Qs run only after both are built)."""
    needle = normalise(needle)
    if not needle:
        return ALWAYS
    in_header = _matching(folder_id, needle, lambda on: _contains(on, "header", [needle]))
    return in_header | body_contains(folder_id, needle)


def header_contains(folder_id: int, name: str, needle: str) -> Q:
    """RFC 9051 §6.4.4 HEADER / FROM / TO / CC / BCC / SUBJECT: a field called `name` whose
    value contains `needle`; with an empty needle, any message that has the field."""
    catch_up(folder_id)
    name, needle = normalise(name), normalise(needle)
    if not _HEADER_NAME.fullmatch(name):
        return NEVER  # no field can have this name
    line = f"\n{name}: "
    # The pattern finds "\nname: " with the needle somewhere after it; the regular
    # expression then keeps the needle within that field's own line.
    regex = f"\n{_regex(name)}: [^\n]*{_regex(needle)}"

    def where(on: str) -> tuple[str, list[Any]]:
        sql, params = _contains(on, "header", [line, needle] if needle else [line])
        operator = "REGEXP" if _sqlite() else "~"
        return f"{sql} AND t.header {operator} %s", [*params, regex]

    return _matching(folder_id, needle, where)


def sent_day_is(folder_id: int, op: Literal["before", "on", "since"], day: date) -> Q:
    """RFC 9051 §6.4.4 SENTBEFORE / SENTON / SENTSINCE: the Date: field's own day compared
    with `day`. Messages without a readable Date: match none of them."""
    catch_up(folder_id)
    return _in_folder(folder_id, f"t.sent_day {_DAY_OPERATORS[op]} %s", [day.isoformat()])


def _matching(folder_id: int, needle: str, where: Where) -> Q:
    """Messages whose blob's row satisfies `where`: through the trigram index when the
    needle is long enough to use it, else by reading the folder's own rows only."""
    if len(needle) < MIN_INDEXED:
        return _in_folder(folder_id, *where("t"))
    if not _sqlite():
        sql, params = where("t")
        return _blobs(f"SELECT t.blob_key FROM {TABLE} t WHERE {sql}", params)
    sql, params = where("f")
    return _blobs(
        f"SELECT t.blob_key FROM {FTS_TABLE} f JOIN {TABLE} t ON t.id = f.rowid WHERE {sql}",
        params,
    )


def _in_folder(folder_id: int, sql: str, params: list[Any]) -> Q:
    """Messages of the folder whose row satisfies `sql`, read row by row (message ids, not
    blob keys, come back: SQLite gathers the subquery's result before using it)."""
    subquery = RawSQL(
        f"SELECT m.id FROM {MESSAGE_TABLE} m JOIN {TABLE} t ON t.blob_key = m.blob_key"
        f" WHERE m.folder_id = %s AND {sql}",
        [folder_id, *params],
        output_field=BigIntegerField(),
    )
    return Q(pk__in=subquery)


def _blobs(sql: str, params: list[Any]) -> Q:
    return Q(blob_key__in=RawSQL(sql, params, output_field=CharField()))


def _contains(on: str, column: str, pieces: list[str]) -> tuple[str, list[Any]]:
    """SQL: `on`.`column` holds `pieces` in this order, literally (both sides lower-case,
    so SQLite's case-sensitive GLOB is right, and it is what FTS5 indexes)."""
    if _sqlite():
        pattern = "*" + "*".join(_glob(piece) for piece in pieces) + "*"
        return f"{on}.{column} GLOB %s", [pattern]
    return f"{on}.{column} LIKE %s", ["%" + "%".join(_like(piece) for piece in pieces) + "%"]


def _sqlite() -> bool:
    return connection.vendor == "sqlite"


def _glob(text: str) -> str:
    """`text` as a literal inside a GLOB pattern."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _like(text: str) -> str:
    """`text` as a literal inside a PostgreSQL LIKE pattern (backslash is its escape)."""
    return re.sub(r"([\\%_])", r"\\\1", text)


def _regex(text: str) -> str:
    """`text` as a literal for both Python's re (SQLite REGEXP) and PostgreSQL's ARE:
    a backslash before any ASCII non-alphanumeric character means that character in both."""
    return "".join("\\" + c if c.isascii() and not c.isalnum() else c for c in text)
