"""SEARCH, SORT and THREAD (RFC 9051 §6.4.4, RFC 5256), with ESEARCH (RFC 4731), SEARCHRES
(RFC 5182), ESORT-style RETURN for SORT (RFC 5267) and CONDSTORE's MODSEQ (RFC 7162 §3.1.5).

The searching itself is `apps.imap.search` / `apps.imap.threading`, which compile the
parsed keys into queries; this module turns their UID lists into responses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from apps.imap import query, responses
from apps.imap.parse_search import SearchAnd, SearchKey, SearchModSeq, SearchNot, SearchOr
from apps.imap.parser import Command, Search, Sort, Thread
from apps.imap.session import CommandError, Reply, Session
from mailhost.threads import in_thread

if TYPE_CHECKING:
    from apps.imap.selected import SelectedMailbox

THREAD_ALGORITHMS = frozenset({"REFERENCES", "ORDEREDSUBJECT"})


def _uses_modseq(key: SearchKey) -> bool:
    match key:
        case SearchModSeq():
            return True
        case SearchNot(inner):
            return _uses_modseq(inner)
        case SearchOr(left, right):
            return _uses_modseq(left) or _uses_modseq(right)
        case SearchAnd(keys):
            return any(_uses_modseq(k) for k in keys)
    return False


def _context(session: Session) -> tuple[SelectedMailbox, dict[str, Any]]:
    selected = session.selected
    assert selected is not None
    context = {"uids": selected.uids, "saved": session.saved, "recent": selected.recent.ranges}
    return selected, context


async def search(session: Session, command: Command) -> Reply:
    from apps.imap import search as engine

    args = command.args
    assert isinstance(args, Search)
    selected, context = _context(session)
    modseq = _uses_modseq(args.key)
    if modseq:
        session.enable_condstore()
    options = args.return_options
    try:
        uids = await in_thread(engine.run_search, selected.folder_id, args.key, **context)
    except Exception:
        if options and "SAVE" in options:
            session.saved = []  # RFC 5182 §2.1: a failed SEARCH ... SAVE empties "$"
        raise
    highest = await _highest_modseq(selected, _returned(options, uids)) if modseq else None
    if options is None and not session.rev2:
        numbers = uids if args.uid else [selected.seq_of(u) or 0 for u in uids]
        text = " ".join(["SEARCH", *map(str, numbers)])
        session.untagged(text + (f" (MODSEQ {highest})" if highest and uids else ""))
        return Reply()
    options = options or frozenset({"ALL"})  # RFC 9051 §6.4.4: rev2 answers in ESEARCH
    _save(session, options, uids)
    if options != {"SAVE"}:
        session.untagged(_esearch(command.tag, selected, args.uid, options, uids, highest))
    return Reply()


def _returned(options: frozenset[str] | None, uids: list[int]) -> list[int]:
    """The messages a SEARCH answer reports, whose highest modseq its MODSEQ gives (RFC 7162
    §3.1.5, §3.1.10): every match for SEARCH, ALL or COUNT; else only the MIN / MAX ones."""
    if options is None or options & {"ALL", "COUNT"} or not uids:
        return uids
    return [uid for uid, option in ((uids[0], "MIN"), (uids[-1], "MAX")) if option in options]


def _save(session: Session, options: frozenset[str], uids: list[int]) -> None:
    """RFC 5182 §2.1: SAVE keeps all matches, or only MIN / MAX when just those go with it."""
    if "SAVE" not in options:
        return
    if options & {"ALL", "COUNT"} or not options & {"MIN", "MAX"}:
        session.saved = list(uids)
        return
    kept = []
    if uids and "MIN" in options:
        kept.append(uids[0])
    if uids and "MAX" in options and uids[-1] not in kept:
        kept.append(uids[-1])
    session.saved = kept


def _esearch(
    tag: str,
    selected: SelectedMailbox,
    uid: bool,
    options: frozenset[str],
    uids: Sequence[int],
    highest: int | None,
) -> str:
    """RFC 4731 §3.1 ESEARCH: (TAG "t") [UID] then MIN MAX COUNT ALL as asked."""
    numbers = list(uids) if uid else [selected.seq_of(u) or 0 for u in uids]
    quoted_tag = tag.replace("\\", "\\\\").replace('"', '\\"')
    parts = [f'ESEARCH (TAG "{quoted_tag}")'] + (["UID"] if uid else [])
    if numbers:
        if "MIN" in options:
            parts.append(f"MIN {min(numbers)}")
        if "MAX" in options:
            parts.append(f"MAX {max(numbers)}")
    if "COUNT" in options:
        parts.append(f"COUNT {len(numbers)}")
    if numbers and "ALL" in options:
        parts.append(f"ALL {responses.uid_set(numbers)}")
    if highest and numbers:
        parts.append(f"MODSEQ {highest}")  # RFC 7162 §3.1.5
    return " ".join(parts)


async def _highest_modseq(selected: SelectedMailbox, uids: list[int]) -> int | None:
    if not uids:
        return None
    found = await in_thread(query.flags_of, selected.folder_id, uids)
    return max((row[0] for row in found.values()), default=None)


async def sort(session: Session, command: Command) -> Reply:
    """RFC 5256 §4: SORT n n n (ordered), or ESEARCH with RETURN (RFC 5267 §3.2); with a
    MODSEQ key, the highest modseq of what it returns (RFC 7162 §3.1.9, §3.1.10)."""
    from apps.imap import sort as engine

    args = command.args
    assert isinstance(args, Sort)
    selected, context = _context(session)
    modseq = _uses_modseq(args.key)
    if modseq:
        session.enable_condstore()
    uids = await in_thread(engine.run_sort, selected.folder_id, args.criteria, args.key, **context)
    numbers = uids if args.uid else [selected.seq_of(u) or 0 for u in uids]
    returned = _returned(args.return_options, sorted(uids))
    highest = await _highest_modseq(selected, returned) if modseq else None
    if args.return_options is None:
        text = " ".join(["SORT", *map(str, numbers)])
        session.untagged(text + (f" (MODSEQ {highest})" if highest and uids else ""))
        return Reply()
    _save(session, args.return_options, list(uids))
    # RFC 5267 §3.2: ALL keeps the sort order (a sequence-set may list in any order).
    options = args.return_options - {"ALL"}
    parts = [_esearch(command.tag, selected, args.uid, options, uids, None)]
    if "ALL" in args.return_options and numbers:
        parts.append("ALL " + ",".join(map(str, numbers)))
    if highest and numbers:
        parts.append(f"MODSEQ {highest}")
    if args.return_options != {"SAVE"}:
        session.untagged(" ".join(parts))
    return Reply()


async def thread(session: Session, command: Command) -> Reply:
    """RFC 5256 §4: THREAD (a)(b c)(d (e)(f))."""
    from apps.imap import threading as engine

    args = command.args
    assert isinstance(args, Thread)
    if args.algorithm not in THREAD_ALGORITHMS:
        raise CommandError("Unsupported threading algorithm", status="BAD")
    selected, context = _context(session)
    threads = await in_thread(
        engine.run_thread, selected.folder_id, args.algorithm, args.key, **context
    )
    numbering = None if args.uid else selected.seq_of
    lists = engine.render_threads(threads, numbering)  # RFC 5256 §4: "THREAD" [SP 1*thread-list]
    session.write(b"* THREAD" + (b" " + lists if lists else b"") + b"\r\n")
    return Reply()
