"""FETCH and UID FETCH: RFC 9051 §6.4.5 / §7.5.2, RFC 3516 BINARY, RFC 7162 MODSEQ,
CHANGEDSINCE and VANISHED.

ENVELOPE, BODY and BODYSTRUCTURE come from what was stored at delivery (`render`); body
sections are cut from the blob with the stored offsets. Messages are fetched in batches on
a worker thread (rows, blob reads and rendering), and written batch by batch. A whole
message (or its text) above STREAM_OVER octets is not read into memory: its literal is
streamed from the blob in chunks.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apps.imap import index, query, responses
from apps.imap.parser import (
    Command,
    Fetch,
    FetchAttr,
    FetchBinary,
    FetchBinarySize,
    FetchBody,
    FetchItem,
)
from apps.imap.render import (
    decode_section_binary,
    imap_binary,
    imap_literal,
    render_body,
    render_envelope,
    section_bytes,
    slice_partial,
)
from apps.imap.session import CommandError, Reply, Session
from apps.mailstore import groupcommit, services, uidsets
from apps.mailstore.blobs import CHUNK, blob_store
from apps.mailstore.mime import UnknownTransferEncoding
from mailhost.threads import in_thread

if TYPE_CHECKING:
    from apps.imap.selected import SelectedMailbox

# Messages per worker-thread round trip: metadata only, and with body sections.
BATCH_META = 2000
BATCH_BODY = 50
FLAG_BATCH = 50_000
STREAM_OVER = 1024 * 1024
# Items that need only flag columns (the UID FETCH 1:* (FLAGS) of every sync client).
FLAG_ONLY = frozenset({"UID", "FLAGS", "MODSEQ"})
_COLUMNS = {
    "FLAGS": ("modseq", "seen", "answered", "flagged", "deleted", "draft", "keywords"),
    "INTERNALDATE": ("internal_date",),
    "RFC822.SIZE": ("size",),
    "ENVELOPE": ("envelope",),
    "BODY": ("body",),
    "BODYSTRUCTURE": ("body",),
    "MODSEQ": ("modseq",),
    "UID": (),
}
_BLOB_COLUMNS = ("blob_key", "body", "size", "header_size")


@dataclass(frozen=True)
class BlobRange:
    """Octets of a blob to stream as they are (after their literal's "{n}" line)."""

    key: str
    start: int
    length: int


Piece = bytes | BlobRange


async def fetch(session: Session, command: Command) -> Reply:
    args = command.args
    assert isinstance(args, Fetch)
    selected = session.selected
    assert selected is not None and session.user is not None
    items = _items(args)
    # With CHANGEDSINCE and nothing that sets \Seen, only the changed messages matter:
    # found first, so "1:*" of a big folder is not walked message by message.
    changed_only = args.changed_since is not None and not any(_sets_seen(i) for i in items)
    if changed_only:
        assert args.changed_since is not None
        pairs = await _changed_pairs(session, selected, args, args.changed_since)
    else:
        pairs = selected.resolve(args.sequence_set, uid=args.uid, saved=session.saved)
    if any(isinstance(i, FetchAttr) and i.name == "MODSEQ" for i in items):
        session.enable_condstore()  # RFC 7162 §3.1: FETCH MODSEQ enables CONDSTORE
    if args.vanished and args.changed_since is not None:
        await _vanished(session, selected, args)
    changed_flags = await _mark_seen(session, selected, pairs, items)
    if args.changed_since is not None and not changed_only:
        pairs = await _changed_since(selected, pairs, args.changed_since)
    if _flags_only(items):
        await _fetch_flags(session, selected, pairs, items)
    else:
        await _fetch_messages(session, selected, pairs, items, changed_flags)
    return Reply()


def _owed(session: Session) -> tuple[str, ...]:
    """What a FETCH that set \\Seen must add to a message's response when not asked: its
    FLAGS (RFC 9051 §6.4.5), and with CONDSTORE on its UID and MODSEQ too (RFC 7162 §3.1:
    "all subsequent untagged FETCH responses", those "that implicitly set \\Seen" named)."""
    return ("FLAGS", "UID", "MODSEQ") if session.condstore else ("FLAGS",)


def _items(args: Fetch) -> tuple[FetchItem, ...]:
    """The items to answer: UID first for UID FETCH (RFC 9051 §6.4.9), MODSEQ added with
    CHANGEDSINCE (RFC 7162 §3.1.4.1)."""
    items = list(args.items)
    names = {i.name for i in items if isinstance(i, FetchAttr)}
    if args.uid and "UID" not in names:
        items.insert(0, FetchAttr("UID"))
    if args.changed_since is not None and "MODSEQ" not in names:
        items.append(FetchAttr("MODSEQ"))
    return tuple(items)


def _flags_only(items: Sequence[FetchItem]) -> bool:
    return all(isinstance(i, FetchAttr) and i.name in FLAG_ONLY for i in items)


def _sets_seen(item: FetchItem) -> bool:
    """RFC 9051 §6.4.5: BODY[...] and BINARY[...] (not .PEEK), RFC822 and RFC822.TEXT."""
    if isinstance(item, FetchBody | FetchBinary):
        return not item.peek
    return isinstance(item, FetchAttr) and item.name in ("RFC822", "RFC822.TEXT")


async def _vanished(session: Session, selected: SelectedMailbox, args: Fetch) -> None:
    """RFC 7162 §3.2.6: VANISHED (EARLIER) for UIDs in the set expunged after CHANGEDSINCE."""
    assert args.changed_since is not None
    gone = await in_thread(query.expunged_since, selected.folder_id, args.changed_since)
    largest = max(selected.uids[-1] if selected.uids else 0, gone[-1] if gone else 0)
    gone = [u for u in gone if args.sequence_set.contains(u, largest)] if gone else []
    if gone:
        session.untagged(f"VANISHED (EARLIER) {responses.uid_set(gone)}")


async def _mark_seen(
    session: Session,
    selected: SelectedMailbox,
    pairs: list[tuple[int, int]],
    items: Sequence[FetchItem],
) -> set[int]:
    """Set \\Seen where the items imply it; returns the UIDs whose flags changed."""
    if selected.readonly or not pairs or not any(_sets_seen(i) for i in items):
        return set()
    assert session.user is not None
    uids = [uid for _, uid in pairs]
    if not await in_thread(index.would_change, selected.folder_id, uids, "add", ["\\Seen"]):
        return set()
    result = await in_thread(
        groupcommit.call,
        services.store_flags,
        session.user.pk,
        selected.folder_id,
        uidsets.to_ranges(uids),
        "add",
        ["\\Seen"],
    )
    for uid, modseq, _ in result.changed:
        selected.note_sent(uid, modseq)
    return {uid for uid, _, _ in result.changed}


async def _changed_pairs(
    session: Session, selected: SelectedMailbox, args: Fetch, modseq: int
) -> list[tuple[int, int]]:
    """RFC 7162 §3.1.4.1: the messages of the set whose modseq is above CHANGEDSINCE."""
    rows = await in_thread(query.changed_rows, selected.folder_id, modseq)
    return selected.resolve_among(
        args.sequence_set, (row[0] for row in rows), uid=args.uid, saved=session.saved
    )


async def _changed_since(
    selected: SelectedMailbox, pairs: list[tuple[int, int]], modseq: int
) -> list[tuple[int, int]]:
    """RFC 7162 §3.1.4.1: only messages whose modseq is above CHANGEDSINCE."""
    rows = await in_thread(query.changed_rows, selected.folder_id, modseq)
    changed = {row[0] for row in rows}
    return [(seq, uid) for seq, uid in pairs if uid in changed]


# -- FLAGS-only fast path -----------------------------------------------------------------


async def _fetch_flags(
    session: Session,
    selected: SelectedMailbox,
    pairs: list[tuple[int, int]],
    items: Sequence[FetchItem],
) -> None:
    """From the folder index, formatted on a worker thread, in batches."""
    names = [i.name for i in items if isinstance(i, FetchAttr)]
    for start in range(0, len(pairs), FLAG_BATCH):
        chunk = pairs[start : start + FLAG_BATCH]
        lines = await in_thread(index.flag_lines, selected.folder_id, chunk, names, selected.recent)
        session.write(lines)
        await session.flush()


# -- everything else -------------------------------------------------------------------------


async def _fetch_messages(
    session: Session,
    selected: SelectedMailbox,
    pairs: list[tuple[int, int]],
    items: Sequence[FetchItem],
    changed_flags: set[int],
) -> None:
    plan = Plan.of(items)
    size = BATCH_BODY if plan.blob else BATCH_META
    for start in range(0, len(pairs), size):
        chunk = pairs[start : start + size]
        try:
            pieces = await in_thread(
                render_batch,
                selected.folder_id,
                chunk,
                items,
                plan,
                changed_flags,
                _owed(session),
                selected.recent,
            )
        except UnknownTransferEncoding:
            raise CommandError("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE") from None
        await _write(session, pieces)


async def _write(session: Session, pieces: list[Piece]) -> None:
    for piece in pieces:
        if isinstance(piece, bytes):
            session.write(piece)
            continue
        await session.flush()
        offset = piece.start
        end = piece.start + piece.length
        while offset < end:
            step = min(CHUNK, end - offset)
            data = await in_thread(_read_range, piece.key, offset, step)
            if not data:
                raise ConnectionError("blob shorter than its row says")
            session.write(data.replace(b"\x00", b"\x80"))  # as render.imap_literal does
            await session.flush()
            offset += len(data)
    await session.flush()


@dataclass(frozen=True)
class Plan:
    """Which columns and how much of each blob a FETCH needs."""

    columns: tuple[str, ...]
    blob: bool  # any body section at all
    full: bool  # more than the top-level header

    @classmethod
    def of(cls, items: Sequence[FetchItem]) -> Plan:
        columns: list[str] = ["modseq"]
        blob = full = False
        for item in items:
            if isinstance(item, FetchAttr) and item.name in _COLUMNS:
                columns += _COLUMNS[item.name]
                continue
            blob = True
            columns += _BLOB_COLUMNS
            full = full or not _header_only(item)
        if blob:  # \Seen may change; FLAGS then go along (RFC 3501 §6.4.5)
            columns += _COLUMNS["FLAGS"]
        return cls(tuple(dict.fromkeys(columns)), blob, full)


def _header_only(item: FetchItem) -> bool:
    if isinstance(item, FetchAttr):
        return item.name == "RFC822.HEADER"
    return (
        isinstance(item, FetchBody)
        and not item.section.part
        and item.section.text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT")
    )


def render_batch(
    folder_id: int,
    pairs: Sequence[tuple[int, int]],
    items: Sequence[FetchItem],
    plan: Plan,
    changed_flags: set[int],
    owed: Sequence[str] = ("FLAGS",),
    recent: Container[int] = (),
) -> list[Piece]:
    """Worker thread: the FETCH responses of one batch, as bytes and blob ranges;
    messages in `changed_flags` also get the `owed` attributes they were not asked for,
    and FLAGS show \\Recent for the UIDs in `recent` (the session's, RFC 3501 §2.3.2)."""
    rows = query.message_rows(folder_id, [uid for _, uid in pairs], plan.columns)
    by_uid = {row["uid"]: row for row in rows}
    pieces: list[Piece] = []
    for seq, uid in pairs:
        row = by_uid.get(uid)
        if row is None:  # expunged meanwhile; its EXPUNGE comes later (RFC 9051 §7.5.1)
            continue
        row["recent"] = uid in recent
        extra = owed if uid in changed_flags else ()
        pieces += _message_pieces(seq, row, items, plan, extra)
    return pieces


def _message_pieces(
    seq: int, row: dict[str, Any], items: Sequence[FetchItem], plan: Plan, extra: Sequence[str]
) -> list[Piece]:
    """One FETCH response: the items asked for, then the `extra` attributes not among them."""
    raw = _raw(row, plan) if plan.blob else b""
    pieces: list[Piece] = [b"* %d FETCH (" % seq]
    asked = {item.name for item in items if isinstance(item, FetchAttr)}
    for position, item in enumerate(items):
        pieces += [b" "] if position else []
        pieces += _item(item, row, raw)
    for name in extra:
        if name not in asked:
            pieces += [b" ", *_attribute(name, row, raw)]
    pieces.append(b")\r\n")
    return _merge(pieces)


def _raw(row: dict[str, Any], plan: Plan) -> bytes:
    """The message bytes the items need: just the header when that is all, else the whole
    message unless it is big enough to stream (then sections read it on demand)."""
    store = blob_store()
    if not plan.full:
        return store.read_range(row["blob_key"], 0, row["header_size"])
    if row["size"] > STREAM_OVER:
        return b""
    return store.read(row["blob_key"])


def _item(item: FetchItem, row: dict[str, Any], raw: bytes) -> list[Piece]:
    if isinstance(item, FetchAttr):
        return _attribute(item.name, row, raw)
    if isinstance(item, FetchBody):
        name = item.response_name().encode()
        section = item.section
        whole = _stream_range(row, section.part, section.text)
        if whole is not None and item.partial is None and not raw:
            return [name + b" " + b"{%d}\r\n" % whole.length, whole]
        data = section_bytes(
            raw or _load(row), row["body"], section.part, section.text, section.fields
        )
        return [name + b" " + _section_value(data, item.partial)]
    if isinstance(item, FetchBinary):
        data = decode_section_binary(raw or _load(row), row["body"], item.part)
        if data is not None and item.partial is not None:
            data = slice_partial(data, item.partial.offset, item.partial.length)
        return [
            item.response_name().encode() + b" " + (b"NIL" if data is None else imap_binary(data))
        ]
    assert isinstance(item, FetchBinarySize)
    data = decode_section_binary(raw or _load(row), row["body"], item.part)
    return [item.response_name().encode() + b" " + (b"NIL" if data is None else b"%d" % len(data))]


def _attribute(name: str, row: dict[str, Any], raw: bytes) -> list[Piece]:
    if name == "UID":
        return [b"UID %d" % row["uid"]]
    if name == "FLAGS":
        return [b"FLAGS " + _flags(row)]
    if name == "MODSEQ":
        return [b"MODSEQ (%d)" % row["modseq"]]
    if name == "INTERNALDATE":
        return [b"INTERNALDATE " + responses.internal_date(row["internal_date"]).encode()]
    if name == "RFC822.SIZE":
        return [b"RFC822.SIZE %d" % row["size"]]
    if name == "ENVELOPE":
        return [b"ENVELOPE " + render_envelope(row["envelope"])]
    if name in ("BODY", "BODYSTRUCTURE"):
        return [name.encode() + b" " + render_body(row["body"], name == "BODYSTRUCTURE")]
    # RFC 3501 §6.4.5: RFC822 = BODY[], RFC822.HEADER = BODY.PEEK[HEADER],
    # RFC822.TEXT = BODY[TEXT]; the response keeps the RFC822 names.
    text = {"RFC822": None, "RFC822.HEADER": "HEADER", "RFC822.TEXT": "TEXT"}[name]
    whole = _stream_range(row, (), text)
    if whole is not None and not raw:
        return [name.encode() + b" {%d}\r\n" % whole.length, whole]
    data = section_bytes(raw or _load(row), row["body"], (), text)
    return [name.encode() + b" " + _section_value(data, None)]


def _stream_range(row: dict[str, Any], part: tuple[int, ...], text: str | None) -> BlobRange | None:
    """The blob range of a whole message or its top-level text, if big enough to stream."""
    if part or text not in (None, "TEXT") or row["size"] <= STREAM_OVER:
        return None
    start = row["header_size"] if text == "TEXT" else 0
    return BlobRange(row["blob_key"], start, row["size"] - start)


def _read_range(key: str, start: int, length: int) -> bytes:
    return blob_store().read_range(key, start, length)


def _load(row: dict[str, Any]) -> bytes:
    return blob_store().read(row["blob_key"])


def _section_value(data: bytes | None, partial: Any) -> bytes:
    """A section as an nstring: NIL when the part does not exist (RFC 9051 §6.4.5)."""
    if data is None:
        return b"NIL"
    if partial is not None:
        data = slice_partial(data, partial.offset, partial.length)
    return imap_literal(data)


def _flags(row: dict[str, Any]) -> bytes:
    return responses.message_flags(
        row["seen"],
        row["answered"],
        row["flagged"],
        row["deleted"],
        row["draft"],
        row["keywords"],
        recent=row.get("recent", False),
    ).encode()


def _merge(pieces: list[Piece]) -> list[Piece]:
    """Adjacent bytes joined, so a message is one write unless it streams."""
    out: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, bytes) and out and isinstance(out[-1], bytes):
            out[-1] += piece
        else:
            out.append(piece)
    return out
