"""The command table: for each parsed command type, its handler and the states it is
valid in (RFC 9051 §6). One module per command group."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apps.imap import parser as p
from apps.imap.commands import (
    append,
    auth,
    basic,
    copy,
    expunge,
    fetch,
    idle,
    listing,
    mailbox,
    quota,
    search,
    store,
)
from apps.imap.session import State

if TYPE_CHECKING:
    from apps.imap.session import Reply, Session

Handler = Callable[["Session", p.Command], Awaitable["Reply | None"]]

ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
NOT_AUTHENTICATED = frozenset({State.NOT_AUTHENTICATED})
AUTHENTICATED = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})


@dataclass(frozen=True)
class Entry:
    handler: Handler
    states: frozenset[State]
    sync: bool = True  # bring the selected mailbox up to date before the tagged reply


DISPATCH: dict[type[Any], Entry] = {
    p.Capability: Entry(basic.capability, ANY),
    p.Noop: Entry(basic.noop, ANY),
    p.Logout: Entry(basic.logout, ANY, sync=False),
    p.Id: Entry(basic.id_, ANY),
    p.StartTls: Entry(auth.starttls, NOT_AUTHENTICATED, sync=False),
    p.Authenticate: Entry(auth.authenticate, NOT_AUTHENTICATED),
    p.Login: Entry(auth.login, NOT_AUTHENTICATED),
    p.Enable: Entry(basic.enable, AUTHENTICATED),
    p.Select: Entry(mailbox.select, AUTHENTICATED, sync=False),
    p.Create: Entry(mailbox.create, AUTHENTICATED),
    p.Delete: Entry(mailbox.delete, AUTHENTICATED),
    p.Rename: Entry(mailbox.rename, AUTHENTICATED),
    p.Subscribe: Entry(mailbox.subscribe, AUTHENTICATED),
    p.Unsubscribe: Entry(mailbox.subscribe, AUTHENTICATED),
    p.List: Entry(listing.list_, AUTHENTICATED),
    p.Lsub: Entry(listing.lsub, AUTHENTICATED),
    p.Namespace: Entry(basic.namespace, AUTHENTICATED),
    p.Status: Entry(mailbox.status, AUTHENTICATED),
    p.Append: Entry(append.append, AUTHENTICATED),
    p.Idle: Entry(idle.idle, AUTHENTICATED),
    p.Compress: Entry(basic.compress, AUTHENTICATED, sync=False),
    p.GetQuota: Entry(quota.getquota, AUTHENTICATED),
    p.GetQuotaRoot: Entry(quota.getquotaroot, AUTHENTICATED),
    p.SetQuota: Entry(quota.setquota, AUTHENTICATED),
    p.Check: Entry(basic.noop, SELECTED),
    p.Close: Entry(expunge.close, SELECTED, sync=False),
    p.Unselect: Entry(expunge.unselect, SELECTED, sync=False),
    p.Expunge: Entry(expunge.expunge, SELECTED),
    p.Search: Entry(search.search, SELECTED),
    p.Fetch: Entry(fetch.fetch, SELECTED),
    p.Store: Entry(store.store, SELECTED),
    p.Copy: Entry(copy.copy, SELECTED),
    p.Move: Entry(copy.copy, SELECTED),
    p.Sort: Entry(search.sort, SELECTED),
    p.Thread: Entry(search.thread, SELECTED),
}
