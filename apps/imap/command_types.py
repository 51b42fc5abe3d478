"""Typed IMAP client commands: what `parser.parse_command` returns.

One frozen dataclass per command's arguments; `Command` pairs them with the tag and the
canonical name ("UID FETCH", "EXAMINE"). Sessions dispatch with `match command.args:`.
Mailbox names are decoded text (modified UTF-7 or, after ENABLE UTF8=ACCEPT, UTF-8) and
"INBOX" in any case is spelled "INBOX".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeAlias

from apps.imap.parse_fetch import FetchItem
from apps.imap.parse_search import SearchKey
from apps.imap.seqset import SequenceSet

# -- any state (RFC 9051 §6.1) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capability:
    pass


@dataclass(frozen=True, slots=True)
class Noop:
    pass


@dataclass(frozen=True, slots=True)
class Logout:
    pass


@dataclass(frozen=True, slots=True)
class Id:
    """RFC 2971: client identification; None for ID NIL."""

    parameters: tuple[tuple[str, str | None], ...] | None


# -- not authenticated (RFC 9051 §6.2) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartTls:
    pass


@dataclass(frozen=True, slots=True)
class Authenticate:
    """AUTHENTICATE mechanism, with the RFC 4959 SASL-IR initial response decoded.

    `initial_response` is None without one and b"" for "=" (an empty response).
    """

    mechanism: str
    initial_response: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    password: str = field(repr=False)


# -- authenticated (RFC 9051 §6.3) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enable:
    """RFC 5161: capability names, upper-cased."""

    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QResync:
    """SELECT ... (QRESYNC (uidvalidity modseq [known-uids [seq-match]])) — RFC 7162 §3.2.5."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    # (known sequence numbers, the UIDs they had), RFC 7162 §3.2.5 "seq-match-data".
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select:
    """SELECT, or EXAMINE when `readonly`; CONDSTORE/QRESYNC parameters of RFC 7162."""

    mailbox: str
    readonly: bool = False
    condstore: bool = False
    qresync: QResync | None = None


@dataclass(frozen=True, slots=True)
class Create:
    """CREATE, with RFC 6154 §3 USE (\\Drafts ...) attributes if given."""

    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delete:
    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename:
    mailbox: str
    new_name: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    mailbox: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    mailbox: str


@dataclass(frozen=True, slots=True)
class List:
    """LIST, with RFC 5258 LIST-EXTENDED and RFC 5819 LIST-STATUS options.

    `extended` is True when any extended syntax was used (selection options, several
    patterns or RETURN), which changes what the response must carry (RFC 5258 §3).
    """

    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()  # SUBSCRIBED REMOTE RECURSIVEMATCH SPECIAL-USE
    returns: frozenset[str] = frozenset()  # SUBSCRIBED CHILDREN SPECIAL-USE STATUS
    status_items: tuple[str, ...] = ()  # RETURN (STATUS (...)) items
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Lsub:
    """RFC 3501 §6.3.9 (removed from IMAP4rev2). `pattern` is None when it (or the
    reference) is not modified UTF-7: it matches nothing (RFC 3501 §5.1.3)."""

    reference: str
    pattern: str | None


@dataclass(frozen=True, slots=True)
class Namespace:
    pass


@dataclass(frozen=True, slots=True)
class Status:
    """STATUS items, upper-cased: MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT
    HIGHESTMODSEQ APPENDLIMIT DELETED-STORAGE MAILBOXID."""

    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of an APPEND (several with RFC 3502 MULTIAPPEND)."""

    data: bytes = field(repr=False)
    flags: tuple[str, ...] = ()
    internal_date: datetime | None = None
    binary: bool = False  # sent as literal8 (RFC 3516 §4.4), may hold NUL
    utf8: bool = False  # RFC 6855 §4: "UTF8 (literal8)" form


@dataclass(frozen=True, slots=True)
class Append:
    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True, slots=True)
class Idle:
    """RFC 2177; the session then reads the DONE line with `reader.read_line`."""


@dataclass(frozen=True, slots=True)
class Compress:
    """RFC 4978: the mechanism, upper-cased (only DEFLATE is defined)."""

    mechanism: str


@dataclass(frozen=True, slots=True)
class GetQuota:
    root: str


@dataclass(frozen=True, slots=True)
class GetQuotaRoot:
    mailbox: str


@dataclass(frozen=True, slots=True)
class SetQuota:
    """RFC 9208 §4.3: resource names upper-cased, with their limits."""

    root: str
    limits: tuple[tuple[str, int], ...]


# -- selected (RFC 9051 §6.4) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    pass


@dataclass(frozen=True, slots=True)
class Close:
    pass


@dataclass(frozen=True, slots=True)
class Unselect:
    pass


@dataclass(frozen=True, slots=True)
class Expunge:
    """EXPUNGE, or UID EXPUNGE set (RFC 4315 §2.1) when `uid`."""

    uid: bool = False
    sequence_set: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class Search:
    """[UID] SEARCH. `key` is the whole program (a SearchAnd if several keys).

    `return_options` is None for a plain SEARCH, else the RFC 4731 ESEARCH options
    (MIN MAX ALL COUNT SAVE); an empty RETURN () arrives as {"ALL"}.
    """

    uid: bool
    key: SearchKey
    charset: str | None = None
    return_options: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Fetch:
    """[UID] FETCH, macros expanded; CHANGEDSINCE / VANISHED from RFC 7162."""

    uid: bool
    sequence_set: SequenceSet
    items: tuple[FetchItem, ...]
    changed_since: int | None = None
    vanished: bool = False


StoreMode: TypeAlias = Literal["replace", "add", "remove"]


@dataclass(frozen=True, slots=True)
class Store:
    """[UID] STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] flags."""

    uid: bool
    sequence_set: SequenceSet
    mode: StoreMode
    flags: tuple[str, ...]
    silent: bool = False
    unchanged_since: int | None = None  # RFC 7162 §3.1.3


@dataclass(frozen=True, slots=True)
class Copy:
    uid: bool
    sequence_set: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class Move:
    """RFC 6851 MOVE / UID MOVE."""

    uid: bool
    sequence_set: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class SortCriterion:
    """RFC 5256 §3 "sort-criterion"; DISPLAYFROM / DISPLAYTO from RFC 5957."""

    key: str
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Sort:
    """[UID] SORT (RFC 5256), with RFC 5267 ESORT return options when given."""

    uid: bool
    criteria: tuple[SortCriterion, ...]
    charset: str
    key: SearchKey
    return_options: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Thread:
    """[UID] THREAD algorithm charset keys (RFC 5256 §3)."""

    uid: bool
    algorithm: str
    charset: str
    key: SearchKey


CommandArgs: TypeAlias = (
    Capability
    | Noop
    | Logout
    | Id
    | StartTls
    | Authenticate
    | Login
    | Enable
    | Select
    | Create
    | Delete
    | Rename
    | Subscribe
    | Unsubscribe
    | List
    | Lsub
    | Namespace
    | Status
    | Append
    | Idle
    | Compress
    | GetQuota
    | GetQuotaRoot
    | SetQuota
    | Check
    | Close
    | Unselect
    | Expunge
    | Search
    | Fetch
    | Store
    | Copy
    | Move
    | Sort
    | Thread
)


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed command: tag, canonical upper-case name, and typed arguments."""

    tag: str
    name: str
    args: CommandArgs
    # A mailbox argument was not modified UTF-7: answered NO [CANNOT] (RFC 3501 §5.1.3).
    invalid_mailbox: bool = False
