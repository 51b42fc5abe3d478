"""IMAP command parser: one client command in wire form to a typed `Command`. Pure.

Input is what `reader.read_command` returns: the command line with every literal inlined
exactly as on the wire (``{n}`` / ``{n+}`` / ``~{n}`` CRLF, then n octets), final CRLF
optional, e.g. ``b'a1 LOGIN {5}\\r\\nalice "secret"'``. One bytes object keeps the parser
a plain function of its input and lets tests write commands as clients send them.

Anything malformed raises `ParseError` (SEARCH with an unknown charset raises its subclass
`BadCharsetError`, answered NO). Once the tag has been read, `ParseError.tag` carries it,
so `err.response()` is the ready "tag BAD message" line. Grammar: RFC 9051 §9 and RFC 3501
§9, plus the extensions cited next to each rule. Search keys: `parse_search`; FETCH
attributes: `parse_fetch`; result types: `command_types`, all re-exported here.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from functools import partial

from apps.imap.command_types import (
    Append,
    AppendMessage,
    Authenticate,
    Capability,
    Check,
    Close,
    Command,
    CommandArgs,
    Compress,
    Copy,
    Create,
    Delete,
    Enable,
    Expunge,
    Fetch,
    GetQuota,
    GetQuotaRoot,
    Id,
    Idle,
    List,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    Noop,
    QResync,
    Rename,
    Search,
    Select,
    SetQuota,
    Sort,
    SortCriterion,
    StartTls,
    Status,
    Store,
    StoreMode,
    Subscribe,
    Thread,
    Unselect,
    Unsubscribe,
)
from apps.imap.lexer import (
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_NUMBER64,
    BadCharsetError,
    Cursor,
    ParseError,
    peek_tag,
)
from apps.imap.mutf7 import decode_mutf7, encode_mutf7
from apps.imap.parse_fetch import (
    FetchAttr,
    FetchBinary,
    FetchBinarySize,
    FetchBody,
    FetchItem,
    Partial,
    Section,
    parse_fetch_items,
    parse_fetch_modifiers,
)
from apps.imap.parse_search import (
    SearchAll,
    SearchAnd,
    SearchBody,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSeq,
    SearchSize,
    SearchText,
    SearchUid,
    parse_charset,
    parse_return_options,
    parse_search_program,
)
from apps.imap.seqset import SeqRange, SequenceSet

# RFC 9051 §6.3.11 STATUS items, plus RECENT (RFC 3501), HIGHESTMODSEQ (RFC 7162 §3.1.2.2),
# APPENDLIMIT (RFC 7889 §3.2), DELETED-STORAGE (RFC 9208 §4.2.1), MAILBOXID (RFC 8474).
STATUS_ITEMS = frozenset(
    {
        "MESSAGES",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "DELETED",
        "SIZE",
        "RECENT",
        "HIGHESTMODSEQ",
        "APPENDLIMIT",
        "DELETED-STORAGE",
        "MAILBOXID",
    }
)
# RFC 5258 §3.1 selection options (SPECIAL-USE from RFC 6154 §5.1).
LIST_SELECTION = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
# RFC 5258 §3.2 return options (SPECIAL-USE from RFC 6154, STATUS from RFC 5819).
LIST_RETURNS = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})
# RFC 5256 §3 "sort-key"; DISPLAYFROM / DISPLAYTO from RFC 5957 §3.
SORT_KEYS = frozenset(
    {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
)
# RFC 6154 §2 "use-attr"; others (use-attr-ext) pass through as sent.
_SPECIAL_USE = {
    u.upper(): u
    for u in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}
_STORE_ACTIONS: dict[str, tuple[StoreMode, bool]] = {
    "FLAGS": ("replace", False),
    "FLAGS.SILENT": ("replace", True),
    "+FLAGS": ("add", False),
    "+FLAGS.SILENT": ("add", True),
    "-FLAGS": ("remove", False),
    "-FLAGS.SILENT": ("remove", True),
}
_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}|=")  # RFC 4959 §7 "initial-resp"


def parse_command(data: bytes, *, utf8: bool = False) -> Command:
    """Parse one command; `utf8` once the client sent ENABLE UTF8=ACCEPT (RFC 6855)."""
    cur = Cursor(data, utf8=utf8)
    if cur.at_end():
        raise ParseError("Empty command line")
    tag = cur.tag()
    try:
        if not cur.take(b" "):
            cur.fail("Expected SP and a command name")
        name, args = _command(cur)
        cur.end()
    except ParseError as exc:
        exc.tag = tag
        raise
    return Command(tag, name, args, cur.invalid_mailbox)


def _command(cur: Cursor) -> tuple[str, CommandArgs]:
    name = cur.keyword()
    if name == "UID":  # RFC 9051 §9 "uid"; SORT and THREAD from RFC 5256 §4
        cur.sp()
        sub = cur.keyword()
        if sub not in _UID_COMMANDS:
            cur.fail("Unknown UID command")
        return f"UID {sub}", _UID_COMMANDS[sub](cur, True)
    if name not in _COMMANDS:
        cur.fail("Unknown command")
    return name, _COMMANDS[name](cur)


def _bare(cls: Callable[[], CommandArgs]) -> Callable[[Cursor], CommandArgs]:
    """A command without arguments."""
    return lambda cur: cls()


def _one_mailbox(cls: Callable[[str], CommandArgs]) -> Callable[[Cursor], CommandArgs]:
    """A command whose only argument is a mailbox: DELETE, SUBSCRIBE, GETQUOTAROOT, ..."""

    def parse(cur: Cursor) -> CommandArgs:
        cur.sp()
        return cls(cur.mailbox())

    return parse


# -- any state and not authenticated -----------------------------------------------------


def _id(cur: Cursor) -> Id:
    """RFC 2971 §4: "ID" SP ("(" *(string SP nstring) ")" / nil)."""
    cur.sp()
    if cur.take_keyword("NIL"):
        return Id(None)

    def pair() -> tuple[str, str | None]:
        key = cur.astring().decode("utf-8", "replace")  # astring: some clients send atoms
        cur.sp()
        value = cur.nstring()
        return key, None if value is None else value.decode("utf-8", "replace")

    return Id(tuple(cur.paren_list(pair, allow_empty=True)))


def _login(cur: Cursor) -> Login:
    """RFC 9051 §9 "login" = "LOGIN" SP userid SP password."""
    cur.sp()
    username = cur.astring_text("User name")
    cur.sp()
    return Login(username, cur.astring_text("Password"))


def _authenticate(cur: Cursor) -> Authenticate:
    """RFC 9051 §9 "authenticate" with RFC 4959 §7 SASL-IR "initial-resp"."""
    cur.sp()
    mechanism = cur.keyword()
    if not cur.take(b" "):
        return Authenticate(mechanism)
    encoded = cur.match(_BASE64, "a base64 initial response")
    if encoded == b"=":
        return Authenticate(mechanism, b"")
    if len(encoded) % 4:
        cur.fail("Invalid base64 in initial response")
    try:
        return Authenticate(mechanism, binascii.a2b_base64(encoded, strict_mode=True))
    except binascii.Error:
        cur.fail("Invalid base64 in initial response")


def _enable(cur: Cursor) -> Enable:
    """RFC 5161 §4: "ENABLE" 1*(SP capability)."""
    capabilities = []
    cur.sp()
    capabilities.append(cur.keyword())
    while cur.take(b" "):
        if len(capabilities) >= MAX_ITEMS:
            cur.fail("Too many capabilities")
        capabilities.append(cur.keyword())
    return Enable(tuple(capabilities))


def _compress(cur: Cursor) -> Compress:
    """RFC 4978 §3: "COMPRESS" SP algorithm."""
    cur.sp()
    return Compress(cur.keyword())


# -- authenticated -----------------------------------------------------------------------


def _select(cur: Cursor, *, readonly: bool) -> Select:
    """RFC 9051 §9 "select" / "examine" with RFC 7162 §3.2.5 / RFC 4466 select-params."""
    cur.sp()
    mailbox = cur.mailbox()
    if not cur.take(b" "):
        return Select(mailbox, readonly)
    found: dict[str, QResync | None] = {}

    def param() -> None:
        word = cur.keyword()
        if word in found:
            cur.fail(f"Duplicate {word} parameter")
        if word == "QRESYNC":
            cur.sp()
            found[word] = _qresync(cur)
        elif word == "CONDSTORE":
            found[word] = None
        else:
            cur.fail("Unknown SELECT parameter")

    cur.paren_list(param)
    return Select(mailbox, readonly, "CONDSTORE" in found, found.get("QRESYNC"))


def _qresync(cur: Cursor) -> QResync:
    """RFC 7162 §7 QRESYNC parameters:
    "(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"."""
    cur.expect(b"(", "'('")
    with cur.nested():
        uidvalidity = cur.number(nonzero=True)
        cur.sp()
        modseq = cur.number(limit=MAX_NUMBER64, nonzero=True)
        known_uids = seq_match = None
        if cur.take(b" ") and not cur.peek_is(b"("):
            known_uids = _known_set(cur)
            if cur.peek_is(b" ("):
                cur.take(b" ")
        if cur.peek_is(b"("):
            seq_match = _seq_match(cur)
        cur.expect(b")", "')'")
    return QResync(uidvalidity, modseq, known_uids, seq_match)


def _seq_match(cur: Cursor) -> tuple[SequenceSet, SequenceSet]:
    """RFC 7162 §7 "seq-match-data" = "(" known-sequence-set SP known-uid-set ")"."""
    cur.expect(b"(", "'('")
    sequence_numbers = _known_set(cur)
    cur.sp()
    uids = _known_set(cur)
    cur.expect(b")", "')'")
    return sequence_numbers, uids


def _known_set(cur: Cursor) -> SequenceSet:
    """A sequence-set in which RFC 7162 §7 does not allow "*" (nor "$")."""
    found = cur.sequence_set()
    if found.uses_star or found.saved:
        cur.fail('"*" is not allowed in QRESYNC sets')
    return found


def _create(cur: Cursor) -> Create:
    """RFC 9051 §9 "create"; RFC 6154 §6 create-param "USE" SP "(" [use-attr ...] ")"."""
    cur.sp()
    mailbox = cur.mailbox()
    uses: list[str] = []

    def param() -> None:
        if cur.keyword() != "USE":
            cur.fail("Unknown CREATE parameter")
        cur.sp()
        uses.extend(cur.paren_list(use_attr, allow_empty=True))

    def use_attr() -> str:
        cur.expect(b"\\", "a special-use attribute")
        name = "\\" + cur.atom()
        return _SPECIAL_USE.get(name.upper(), name)

    if cur.take(b" "):
        cur.paren_list(param)
    return Create(mailbox, tuple(uses))


def _rename(cur: Cursor) -> Rename:
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    return Rename(mailbox, cur.mailbox())


def _reference(cur: Cursor) -> str | None:
    """LIST/LSUB reference name: a mailbox, but "inbox/" keeps its case; None if it is
    not modified UTF-7."""
    return cur.decoded_name(cur.astring())


def _list(cur: Cursor) -> List:
    """RFC 9051 §9 "list" = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat
    [SP list-return-opts] (RFC 5258 §6 LIST-EXTENDED)."""
    cur.sp()
    selection: frozenset[str] = frozenset()
    has_selection = cur.peek_is(b"(")
    if has_selection:
        selection = _list_selection(cur)
        cur.sp()
    reference = _reference(cur)
    cur.sp()
    several = cur.peek_is(b"(")
    found = cur.paren_list(cur.list_mailbox) if several else [cur.list_mailbox()]
    # RFC 3501 §5.1.3: a pattern (or reference) that is not modified UTF-7 names nothing,
    # so it matches nothing; LIST still answers OK, as Dovecot does, not BAD.
    patterns = tuple(p for p in found if p is not None and reference is not None)
    returns: frozenset[str] = frozenset()
    status: tuple[str, ...] = ()
    has_returns = cur.take(b" ")
    if has_returns:
        if not cur.take_keyword("RETURN"):
            cur.fail("Expected RETURN")
        cur.sp()
        returns, status = _list_returns(cur)
    extended = has_selection or several or has_returns
    return List(reference or "", patterns, selection, returns, status, extended)


def _list_selection(cur: Cursor) -> frozenset[str]:
    """RFC 5258 §6 "list-select-opts"."""
    selection = frozenset(cur.paren_list(cur.keyword, allow_empty=True))
    if not selection <= LIST_SELECTION:
        cur.fail("Unknown LIST selection option")
    if "RECURSIVEMATCH" in selection and selection <= {"RECURSIVEMATCH", "REMOTE"}:
        cur.fail("RECURSIVEMATCH needs another selection option (RFC 5258 §3.1)")
    return selection


def _list_returns(cur: Cursor) -> tuple[frozenset[str], tuple[str, ...]]:
    """RFC 5258 §6 "list-return-opts" body, with RFC 5819 STATUS (...)."""
    found: set[str] = set()
    status: list[str] = []

    def option() -> None:
        word = cur.keyword()
        if word not in LIST_RETURNS or word in found:
            cur.fail("Unknown or repeated LIST return option")
        found.add(word)
        if word == "STATUS":
            cur.sp()
            status.extend(_status_items(cur))

    cur.paren_list(option, allow_empty=True)
    return frozenset(found), tuple(status)


def _lsub(cur: Cursor) -> Lsub:
    cur.sp()
    reference = _reference(cur)
    cur.sp()
    pattern = cur.list_mailbox()
    if reference is None or pattern is None:
        return Lsub("", None)  # matches nothing, as for LIST (RFC 3501 §5.1.3)
    return Lsub(reference, pattern)


def _status_items(cur: Cursor) -> list[str]:
    """ "(" status-att *(SP status-att) ")" (RFC 9051 §9)."""
    items = cur.paren_list(cur.keyword)
    if not set(items) <= STATUS_ITEMS:
        cur.fail("Unknown STATUS item")
    return items


def _status(cur: Cursor) -> Status:
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    return Status(mailbox, tuple(_status_items(cur)))


def _append(cur: Cursor) -> Append:
    """RFC 9051 §9 "append" = "APPEND" SP mailbox 1*append-message (RFC 3502 MULTIAPPEND)."""
    cur.sp()
    mailbox = cur.mailbox()
    messages: list[AppendMessage] = []
    while not cur.at_end():
        if len(messages) >= MAX_ITEMS:
            cur.fail("Too many messages in one APPEND")
        cur.sp()
        messages.append(_append_message(cur))
    if not messages:
        cur.fail("Expected a message")
    return Append(mailbox, tuple(messages))


def _append_message(cur: Cursor) -> AppendMessage:
    """append-opts SP append-data: [flag-list SP] [date-time SP] (literal / literal8 /
    "UTF8" SP "(" literal8 ")" from RFC 6855 §4)."""
    flags: tuple[str, ...] = ()
    if cur.peek_is(b"("):
        flags = cur.flag_list()
        cur.sp()
    internal_date = None
    if cur.peek_is(b'"'):
        internal_date = cur.date_time()
        cur.sp()
    if cur.take_keyword("UTF8"):
        cur.sp()
        cur.expect(b"(", "'('")
        data, _ = cur.literal(binary=True)
        cur.expect(b")", "')'")
        return AppendMessage(data, flags, internal_date, binary=True, utf8=True)
    data, binary = cur.literal(binary=True)
    return AppendMessage(data, flags, internal_date, binary=binary)


def _getquota(cur: Cursor) -> GetQuota:
    """RFC 9208 §4.2: "GETQUOTA" SP quota-root-name."""
    cur.sp()
    return GetQuota(cur.astring_text("Quota root"))


def _setquota(cur: Cursor) -> SetQuota:
    """RFC 9208 §4.3: "SETQUOTA" SP quota-root-name SP "(" [resource SP limit ...] ")"."""
    cur.sp()
    root = cur.astring_text("Quota root")
    cur.sp()

    def resource() -> tuple[str, int]:
        name = cur.keyword()
        cur.sp()
        return name, cur.number64()

    return SetQuota(root, tuple(cur.paren_list(resource, allow_empty=True)))


# -- selected ------------------------------------------------------------------------------


def _uid_expunge(cur: Cursor, uid: bool) -> Expunge:
    """RFC 4315 §2.1: "UID EXPUNGE" SP sequence-set."""
    cur.sp()
    return Expunge(True, cur.sequence_set())


def _copy(cur: Cursor, uid: bool) -> Copy:
    cur.sp()
    sequence_set = cur.sequence_set()
    cur.sp()
    return Copy(uid, sequence_set, cur.mailbox())


def _move(cur: Cursor, uid: bool) -> Move:
    """RFC 6851 §3.1: "MOVE" SP sequence-set SP mailbox."""
    cur.sp()
    sequence_set = cur.sequence_set()
    cur.sp()
    return Move(uid, sequence_set, cur.mailbox())


def _fetch(cur: Cursor, uid: bool) -> Fetch:
    """RFC 9051 §9 "fetch" plus RFC 4466 fetch-modifiers."""
    cur.sp()
    sequence_set = cur.sequence_set()
    cur.sp()
    items = parse_fetch_items(cur)
    changed_since, vanished = None, False
    if cur.take(b" "):
        changed_since, vanished = parse_fetch_modifiers(cur)
    # RFC 7162 §3.2.6: VANISHED only in UID FETCH, and only with CHANGEDSINCE.
    if vanished and not (uid and changed_since is not None):
        cur.fail("VANISHED needs UID FETCH and CHANGEDSINCE")
    return Fetch(uid, sequence_set, items, changed_since, vanished)


def _store(cur: Cursor, uid: bool) -> Store:
    """RFC 9051 §9 "store" = "STORE" SP sequence-set [store-modifiers] SP store-att-flags."""
    cur.sp()
    sequence_set = cur.sequence_set()
    cur.sp()
    unchanged_since = None
    if cur.peek_is(b"("):
        unchanged_since = _store_modifiers(cur)
        cur.sp()
    action = _STORE_ACTIONS.get(cur.keyword())
    if action is None:
        cur.fail("Expected FLAGS, +FLAGS or -FLAGS")
    cur.sp()
    return Store(uid, sequence_set, action[0], _store_flags(cur), action[1], unchanged_since)


def _store_modifiers(cur: Cursor) -> int:
    """RFC 7162 §3.1.3: "(" "UNCHANGEDSINCE" SP mod-sequence-valzer ")"."""

    def modifier() -> int:
        if cur.keyword() != "UNCHANGEDSINCE":
            cur.fail("Unknown STORE modifier")
        cur.sp()
        return cur.number64()

    found = cur.paren_list(modifier)
    if len(found) > 1:
        cur.fail("Repeated UNCHANGEDSINCE")
    return found[0]


def _store_flags(cur: Cursor) -> tuple[str, ...]:
    """flag-list / (flag *(SP flag))."""
    if cur.peek_is(b"("):
        return cur.flag_list()
    flags = [cur.flag()]
    while cur.take(b" "):
        if len(flags) >= MAX_ITEMS:
            cur.fail("Too many flags")
        flags.append(cur.flag())
    return tuple(flags)


def _search(cur: Cursor, uid: bool) -> Search:
    """RFC 9051 §9 "search" = "SEARCH" [search-return-opts] SP search-program."""
    cur.sp()
    return_options = None
    if cur.take_keyword("RETURN"):
        cur.sp()
        return_options = parse_return_options(cur)
        cur.sp()
    charset = None
    if cur.take_keyword("CHARSET"):
        cur.sp()
        charset = parse_charset(cur)
        cur.sp()
    return Search(uid, parse_search_program(cur, charset), charset, return_options)


def _sort(cur: Cursor, uid: bool) -> Sort:
    """RFC 5256 §4 "sort" (RFC 5267 §3.2 RETURN): SORT [RETURN (...)] (criteria) charset keys."""
    cur.sp()
    return_options = None
    if cur.take_keyword("RETURN"):
        cur.sp()
        return_options = parse_return_options(cur)
        cur.sp()

    def criterion() -> SortCriterion:
        reverse = cur.take_keyword("REVERSE")
        if reverse:
            cur.sp()
        key = cur.keyword()
        if key not in SORT_KEYS:
            cur.fail("Unknown sort key")
        return SortCriterion(key, reverse)

    criteria = tuple(cur.paren_list(criterion))
    cur.sp()
    charset = parse_charset(cur)
    cur.sp()
    return Sort(uid, criteria, charset, parse_search_program(cur, charset), return_options)


def _thread(cur: Cursor, uid: bool) -> Thread:
    """RFC 5256 §4 "thread" = "THREAD" SP thread-alg SP search-criteria."""
    cur.sp()
    algorithm = cur.keyword()
    cur.sp()
    charset = parse_charset(cur)
    cur.sp()
    return Thread(uid, algorithm, charset, parse_search_program(cur, charset))


_UID_COMMANDS: dict[str, Callable[[Cursor, bool], CommandArgs]] = {
    "COPY": _copy,
    "MOVE": _move,
    "FETCH": _fetch,
    "SEARCH": _search,
    "STORE": _store,
    "EXPUNGE": _uid_expunge,
    "SORT": _sort,
    "THREAD": _thread,
}


def _without_uid(parse: Callable[[Cursor, bool], CommandArgs]) -> Callable[[Cursor], CommandArgs]:
    """FETCH, SEARCH, ... without the UID prefix."""
    return lambda cur: parse(cur, False)


_COMMANDS: dict[str, Callable[[Cursor], CommandArgs]] = {
    "CAPABILITY": _bare(Capability),
    "NOOP": _bare(Noop),
    "LOGOUT": _bare(Logout),
    "STARTTLS": _bare(StartTls),
    "CHECK": _bare(Check),
    "CLOSE": _bare(Close),
    "UNSELECT": _bare(Unselect),
    "IDLE": _bare(Idle),
    "NAMESPACE": _bare(Namespace),
    "EXPUNGE": _bare(Expunge),
    "ID": _id,
    "LOGIN": _login,
    "AUTHENTICATE": _authenticate,
    "ENABLE": _enable,
    "COMPRESS": _compress,
    "SELECT": partial(_select, readonly=False),
    "EXAMINE": partial(_select, readonly=True),
    "CREATE": _create,
    "DELETE": _one_mailbox(Delete),
    "SUBSCRIBE": _one_mailbox(Subscribe),
    "UNSUBSCRIBE": _one_mailbox(Unsubscribe),
    "GETQUOTAROOT": _one_mailbox(GetQuotaRoot),
    "RENAME": _rename,
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status,
    "APPEND": _append,
    "GETQUOTA": _getquota,
    "SETQUOTA": _setquota,
    **{name: _without_uid(parse) for name, parse in _UID_COMMANDS.items() if name != "EXPUNGE"},
}

__all__ = [
    "LIST_RETURNS",
    "LIST_SELECTION",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "SORT_KEYS",
    "STATUS_ITEMS",
    "Append",
    "AppendMessage",
    "Authenticate",
    "BadCharsetError",
    "Capability",
    "Check",
    "Close",
    "Command",
    "CommandArgs",
    "Compress",
    "Copy",
    "Create",
    "Delete",
    "Enable",
    "Expunge",
    "Fetch",
    "FetchAttr",
    "FetchBinary",
    "FetchBinarySize",
    "FetchBody",
    "FetchItem",
    "GetQuota",
    "GetQuotaRoot",
    "Id",
    "Idle",
    "List",
    "Login",
    "Logout",
    "Lsub",
    "Move",
    "Namespace",
    "Noop",
    "ParseError",
    "Partial",
    "QResync",
    "Rename",
    "Search",
    "SearchAll",
    "SearchAnd",
    "SearchBody",
    "SearchDate",
    "SearchFlag",
    "SearchHeader",
    "SearchKey",
    "SearchModSeq",
    "SearchNot",
    "SearchOr",
    "SearchSeq",
    "SearchSize",
    "SearchText",
    "SearchUid",
    "Section",
    "Select",
    "SeqRange",
    "SequenceSet",
    "SetQuota",
    "Sort",
    "SortCriterion",
    "StartTls",
    "Status",
    "Store",
    "StoreMode",
    "Subscribe",
    "Thread",
    "Unselect",
    "Unsubscribe",
    "decode_mutf7",
    "encode_mutf7",
    "parse_command",
    "peek_tag",
]
