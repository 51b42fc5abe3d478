"""STORE and UID STORE: RFC 9051 §6.4.6, with RFC 7162 §3.1.3 UNCHANGEDSINCE.

The change is one store service call; the FETCH responses it owes the client are built
from what the service reports, plus the current flags of messages it left unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.imap import index, query, responses
from apps.imap.parser import Command, Store
from apps.imap.session import CommandError, Reply, Session
from apps.mailstore import groupcommit, services, uidsets
from mailhost.threads import in_thread

if TYPE_CHECKING:
    from apps.imap.selected import SelectedMailbox


async def store(session: Session, command: Command) -> Reply:
    args = command.args
    assert isinstance(args, Store)
    selected = session.selected
    assert selected is not None and session.user is not None
    if selected.readonly:
        raise CommandError("Mailbox is read-only", "READ-ONLY")
    if args.unchanged_since is not None:
        session.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
    pairs = selected.resolve(args.sequence_set, uid=args.uid, saved=session.saved)
    flags = [f for f in args.flags if f != "\\Recent"]  # RFC 9051 §2.3.2: not settable
    _announce_keywords(session, selected, flags)
    uids = [uid for _, uid in pairs]
    result = await in_thread(
        _store_if_changing,
        session.user.pk,
        selected.folder_id,
        uids,
        args.mode,
        flags,
        args.unchanged_since,
    )
    changed = {uid: (modseq, flag_list) for uid, modseq, flag_list in result.changed}
    for uid, (modseq, _) in changed.items():
        selected.note_sent(uid, modseq)
    await _respond(session, selected, args, pairs, changed, set(result.conflicts))
    if result.conflicts:
        # RFC 7162 §3.1.3: MODIFIED lists what failed UNCHANGEDSINCE (UIDs for UID STORE).
        numbers = (
            result.conflicts if args.uid else [selected.seq_of(u) or 0 for u in result.conflicts]
        )
        return Reply(
            "OK",
            "Conditional STORE failed for some messages",
            f"MODIFIED {responses.uid_set(n for n in numbers if n)}",
        )
    return Reply()


def _store_if_changing(
    user_id: int,
    folder_id: int,
    uids: list[int],
    mode: str,
    flags: list[str],
    unchanged_since: int | None,
) -> services.FlagChange:
    """On a worker thread, in one hop: skip the write transaction when the index says
    nothing would change; UNCHANGEDSINCE always asks the store, which reports conflicts."""
    if unchanged_since is None and not index.would_change(folder_id, uids, mode, flags):
        return services.FlagChange()
    ranges = uidsets.to_ranges(uids)
    return groupcommit.run(
        lambda: services.store_flags(user_id, folder_id, ranges, mode, flags, unchanged_since)
    )


def _announce_keywords(session: Session, selected: SelectedMailbox, flags: list[str]) -> None:
    """A keyword new to the mailbox gets fresh FLAGS / PERMANENTFLAGS (RFC 9051 §7.3.5)."""
    new = {f for f in flags if not f.startswith("\\")} - selected.keywords
    if new:
        selected.keywords |= new
        for line in selected.flags_announcement():
            session.write(line)


async def _respond(
    session: Session,
    selected: SelectedMailbox,
    args: Store,
    pairs: list[tuple[int, int]],
    changed: dict[int, tuple[int, list[str]]],
    conflicts: set[int],
) -> None:
    """FETCH FLAGS for every message in the set (not with .SILENT); with CONDSTORE, MODSEQ
    too, and even .SILENT reports the new MODSEQ of changed messages (RFC 7162 §3.1.3)."""
    if args.silent and not session.condstore:
        return
    current: dict = {}
    if not args.silent:
        rest = [uid for _, uid in pairs if uid not in changed and uid not in conflicts]
        current = await in_thread(query.flags_of, selected.folder_id, rest)
    for seq, uid in pairs:
        if uid in changed:
            modseq, flag_list = changed[uid]
            flags_text = responses.flag_list(flag_list, recent=uid in selected.recent)
        elif uid in current and not args.silent:
            modseq = current[uid][0]
            flags_text = responses.message_flags(*current[uid][1:7], recent=uid in selected.recent)
        else:
            continue
        parts = [] if args.silent else [f"FLAGS {flags_text}"]
        if args.uid or session.condstore:
            parts.insert(0, f"UID {uid}")
        if session.condstore:
            parts.append(f"MODSEQ ({modseq})")
        session.untagged(f"{seq} FETCH ({' '.join(parts)})")
