"""Mailbox commands of the authenticated state: SELECT, EXAMINE (with RFC 7162 CONDSTORE
and QRESYNC), CREATE (RFC 6154 USE), DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, STATUS.

RFC 9051 §6.3. Writes are store services; SELECT reads a snapshot from the folder index.
"""

from __future__ import annotations

from apps.imap import index, query, responses
from apps.imap.parser import (
    Command,
    Create,
    Delete,
    QResync,
    Rename,
    Select,
    Status,
    Subscribe,
    Unsubscribe,
)
from apps.imap.selected import SelectedMailbox
from apps.imap.session import CommandError, Reply, Session
from apps.mailstore import groupcommit, services
from apps.mailstore.models import Folder
from mailhost.threads import in_thread

# RFC 6154 §2: the attributes CREATE ... USE may set.
KNOWN_USES = frozenset(str(choice) for choice in Folder.SpecialUse.values if choice)


def _user(session: Session):
    assert session.user is not None
    return session.user


# -- SELECT / EXAMINE ---------------------------------------------------------------------


async def select(session: Session, command: Command) -> Reply:
    """RFC 9051 §6.3.2 / §6.3.3. A failed SELECT leaves no mailbox selected."""
    args = command.args
    assert isinstance(args, Select)
    if args.qresync is not None and not session.qresync:
        # RFC 7162 §3.2.5: QRESYNC parameters need ENABLE QRESYNC first.
        raise CommandError("ENABLE QRESYNC first", status="BAD")
    if session.selected is not None:
        session.select(None)
        session.untagged("OK [CLOSED] Previous mailbox closed")  # RFC 7162 §3.2.11
    try:
        snapshot = await in_thread(index.open_folder, _user(session).pk, args.mailbox)
    except services.FolderNotFound:
        raise CommandError("No such mailbox", "NONEXISTENT") from None
    if args.condstore:
        session.enable_condstore()  # RFC 7162 §3.1.8: SELECT (CONDSTORE) enables it
    mailbox = SelectedMailbox(snapshot, readonly=args.readonly, keeps_recent=not session.rev2)
    looked_again = await _take_recent(mailbox, snapshot)
    _announce(session, mailbox, snapshot)
    session.select(mailbox)
    # Mail that came while the claim ran may be claimed already but not in the snapshot,
    # and its change event was just drained: the first sync reads the store again.
    session.dirty = looked_again
    if args.qresync is not None and args.qresync.uidvalidity == snapshot.uidvalidity:
        await _qresync(session, mailbox, args.qresync)
    return Reply("OK", "", "READ-ONLY" if args.readonly else "READ-WRITE")


async def _take_recent(mailbox: SelectedMailbox, snapshot: query.Snapshot) -> bool:
    """Claim (SELECT) or look at (EXAMINE) the messages no session has claimed as \\Recent
    (RFC 3501 §2.3.2, §6.3.2; apps.imap.recent); without any, as usual, no query at all.
    True when it asked the store."""
    last = mailbox.uids[-1] if mailbox.uids else 0
    if not mailbox.keeps_recent or snapshot.recent_uid > max(last, snapshot.uidnext - 1):
        return False
    await mailbox.take_recent()
    return True


def _announce(session: Session, mailbox: SelectedMailbox, snapshot: query.Snapshot) -> None:
    """The untagged data SELECT must send (RFC 9051 §6.3.2, RFC 3501 §6.3.1)."""
    for line in mailbox.flags_announcement():
        session.write(line)
    session.untagged(f"{mailbox.exists} EXISTS")
    if not session.rev2:  # RFC 3501 §6.3.1; RFC 9051 §6.3.2: deprecated
        session.untagged(f"{mailbox.recent_count} RECENT")
        if snapshot.first_unseen_uid is not None:
            seq = mailbox.seq_of(snapshot.first_unseen_uid)
            if seq is not None:
                session.untagged(f"OK [UNSEEN {seq}] First unseen")
    uidnext = max(snapshot.uidnext, (mailbox.uids[-1] + 1) if mailbox.uids else 1)
    session.untagged(f"OK [UIDVALIDITY {snapshot.uidvalidity}] UIDs valid")
    session.untagged(f"OK [UIDNEXT {uidnext}] Predicted next UID")
    session.untagged(f"OK [HIGHESTMODSEQ {snapshot.highestmodseq}] Highest")  # RFC 7162 §3.1.2.1
    if session.rev2:  # RFC 9051 §6.3.2: a LIST response with the mailbox name
        name = responses.mailbox(snapshot.name, utf8=True).decode()
        session.untagged(f'LIST () "/" {name}')


async def _qresync(session: Session, mailbox: SelectedMailbox, params: QResync) -> None:
    """RFC 7162 §3.2.5.2: VANISHED (EARLIER) for what went since the client's modseq, then
    FETCH (UID FLAGS MODSEQ) for what changed, within the client's known UIDs."""
    known = params.known_uids
    gone = await in_thread(query.expunged_since, mailbox.folder_id, params.modseq)
    largest = mailbox.uids[-1] if mailbox.uids else 0
    if known is not None:
        gone = [u for u in gone if known.contains(u, largest)]
    if gone:
        session.untagged(f"VANISHED (EARLIER) {responses.uid_set(gone)}")
    changed = await in_thread(query.changed_rows, mailbox.folder_id, params.modseq)
    for row in changed:
        uid = row[0]
        if known is not None and not known.contains(uid, largest):
            continue
        seq = mailbox.seq_of(uid)
        if seq is not None:
            recent = uid in mailbox.recent
            session.write(mailbox.flags_response(seq, uid, row[1], row[2:8], True, recent))


# -- CREATE / DELETE / RENAME / SUBSCRIBE ---------------------------------------------------


async def create(session: Session, command: Command) -> Reply:
    """RFC 9051 §6.3.4; RFC 6154 §3 CREATE-SPECIAL-USE takes one known attribute."""
    args = command.args
    assert isinstance(args, Create)
    if len(args.special_use) > 1 or not set(args.special_use) <= KNOWN_USES:
        raise CommandError("Unsupported special-use attribute", "USEATTR")
    name = args.mailbox.rstrip("/")
    if name.upper() == "INBOX":
        raise CommandError("INBOX always exists", "ALREADYEXISTS")
    try:
        await in_thread(
            groupcommit.call,
            services.create_folder,
            _user(session),
            name,
            args.special_use[0] if args.special_use else "",
        )
    except services.FolderExists:
        raise CommandError("Mailbox already exists", "ALREADYEXISTS") from None
    return Reply()


async def delete(session: Session, command: Command) -> Reply:
    """RFC 9051 §6.3.5: the folder and its messages go; children stay."""
    args = command.args
    assert isinstance(args, Delete)
    if args.mailbox == "INBOX":
        raise CommandError("INBOX cannot be deleted", "CANNOT")
    try:
        folder_id = await in_thread(query.folder_id_of, _user(session).pk, args.mailbox)
        if session.selected is not None and session.selected.folder_id == folder_id:
            session.select(None)
            session.untagged("OK [CLOSED] Deleted mailbox was selected")
        await in_thread(groupcommit.call, services.delete_folder, _user(session), args.mailbox)
    except services.FolderNotFound:
        raise CommandError("No such mailbox", "NONEXISTENT") from None
    return Reply()


async def rename(session: Session, command: Command) -> Reply:
    """RFC 9051 §6.3.6; renaming INBOX moves its messages and leaves it empty."""
    args = command.args
    assert isinstance(args, Rename)
    new = args.new_name.rstrip("/")
    if new.upper() == "INBOX":
        raise CommandError("INBOX already exists", "ALREADYEXISTS")
    try:
        await in_thread(groupcommit.call, services.rename_folder, _user(session), args.mailbox, new)
    except services.FolderNotFound:
        raise CommandError("No such mailbox", "NONEXISTENT") from None
    except services.FolderExists:
        raise CommandError("Target mailbox already exists", "ALREADYEXISTS") from None
    return Reply()


async def subscribe(session: Session, command: Command) -> Reply:
    """RFC 9051 §6.3.7-8: any name may be subscribed, whether or not a mailbox has it (a
    server MAY check, RFC 3501 §6.3.6; Dovecot does not), and either command is OK when
    the name already was, or was not, subscribed."""
    args = command.args
    assert isinstance(args, Subscribe | Unsubscribe)
    await in_thread(
        groupcommit.call,
        services.set_subscribed,
        _user(session),
        args.mailbox,
        isinstance(args, Subscribe),
    )
    return Reply()


# -- STATUS ---------------------------------------------------------------------------------


async def status(session: Session, command: Command) -> Reply:
    """RFC 9051 §6.3.11 (and RFC 7162 HIGHESTMODSEQ, RFC 8438 SIZE, RFC 7889 APPENDLIMIT)."""
    args = command.args
    assert isinstance(args, Status)
    try:
        line = await status_line(session, args.mailbox, args.items)
    except services.FolderNotFound:
        raise CommandError("No such mailbox", "NONEXISTENT") from None
    session.write(line)
    return Reply()


async def status_line(session: Session, name: str, items: tuple[str, ...]) -> bytes:
    """One "* STATUS name (...)" response."""
    sizes = "SIZE" in items or "DELETED-STORAGE" in items
    found = await in_thread(
        services.folder_status, _user(session).pk, name, sizes, "RECENT" in items
    )
    if "HIGHESTMODSEQ" in items:
        session.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
    values = {
        "MESSAGES": found.messages,
        "UIDNEXT": found.uidnext,
        "UIDVALIDITY": found.uidvalidity,
        "UNSEEN": found.unseen,
        "DELETED": found.deleted,
        "SIZE": found.size,
        "RECENT": found.recent,  # RFC 3501 §6.3.10: not yet claimed by any session
        "HIGHESTMODSEQ": found.highestmodseq,
        "APPENDLIMIT": session.limits.max_literal,
        "DELETED-STORAGE": found.deleted_size,
    }
    pairs = " ".join(f"{item} {values[item]}" for item in items if item in values)
    return (
        b"* STATUS "
        + responses.mailbox(services.normalise_folder_name(name), utf8=session.utf8)
        + f" ({pairs})\r\n".encode()
    )
