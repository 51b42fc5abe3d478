"""SMTP decisions that need the database: who may receive, who may send as whom, rates.

Plain synchronous functions; the handler runs them off the event loop, except the quick
checks, which take the loop's read-only reader and never wait (mailhost/sqlite/loopreader.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache

from apps.accounts import services as accounts
from apps.accounts.addresses import normalise
from apps.mailstore import plainsql
from apps.mailstore import services as store
from apps.smtp import replies

RATE_WINDOW_SECONDS = 3600


@dataclass
class RecipientVerdict:
    reply: str
    user_ids: list[int] = field(default_factory=list)
    external: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("250")


def check_recipient(address: str, sender_id: int | None, relay_ok: bool) -> RecipientVerdict:
    """RCPT TO: a local address must reach an enabled user (550 5.1.1) whose mailbox is
    not full (452 4.2.2); a remote one needs an authenticated sender (554 5.7.1)."""
    verdict = _check_recipient(address, sender_id, relay_ok, plainsql.fetch_one, resolve=True)
    assert verdict is not None  # with resolve, every address gets a verdict
    return verdict


def check_recipient_quickly(
    address: str, sender_id: int | None, relay_ok: bool, fetch_one: plainsql.FetchOne
) -> RecipientVerdict | None:
    """`check_recipient` for the common cases, a user's own address or a remote one, with
    plain queries through `fetch_one` alone; None when only resolving the address can
    tell (aliases, +tags, catch-alls, unknown local parts: the ORM, on a database thread)."""
    return _check_recipient(address, sender_id, relay_ok, fetch_one, resolve=False)


def _check_recipient(
    address: str, sender_id: int | None, relay_ok: bool, fetch_one: plainsql.FetchOne, resolve: bool
) -> RecipientVerdict | None:
    looked_up = accounts.lookup(address, fetch_one)
    if not looked_up.is_local:
        if sender_id is None and not relay_ok:
            return RecipientVerdict(replies.RELAY_DENIED)
        return RecipientVerdict(replies.OK, external=[normalise(address)])
    found = looked_up.recipients
    if found is None:
        if not resolve:
            return None
        found = accounts.resolve(address)
    if not found:
        return RecipientVerdict(replies.UNKNOWN_USER)
    if any(store.is_over_quota(user_id, fetch_one) for user_id in found.user_ids):
        return RecipientVerdict(replies.MAILBOX_FULL)
    return RecipientVerdict(replies.OK, user_ids=found.user_ids, external=found.external)


def sender_owned(user_id: int, address: str) -> bool:
    """The user's own address (with or without a +tag) or an alias that reaches them.
    A catch-all does not count: it would let its owner send as anyone at the domain."""
    if not address:
        return False
    if _own_address(user_id, address, plainsql.fetch_one):
        return True
    found = accounts.resolve(address, use_catch_all=False)
    return found.user_ids == [user_id] or (user_id in found.user_ids and accounts.is_alias(address))


def _own_address(user_id: int, address: str, fetch_one: plainsql.FetchOne) -> bool:
    """Whether `address` is the user's own, as one plain query tells (`accounts.lookup`):
    the usual envelope sender, which then needs neither the ORM nor `resolve`."""
    found = accounts.lookup(address, fetch_one).recipients
    return found is not None and found.user_ids == [user_id]


def check_sender(user_id: int, address: str) -> str:
    """MAIL FROM on submission, in one trip to a database thread: the address must be the
    user's (553 5.7.1), and the message must fit the user's hourly rate."""
    if not sender_owned(user_id, address):
        return replies.SENDER_NOT_OWNED
    return _rate_verdict(user_id)


def check_sender_quickly(user_id: int, address: str, fetch_one: plainsql.FetchOne) -> str | None:
    """`check_sender` for the common case, the user's own address with the rate counted in
    this process's memory, through `fetch_one` alone; None when only a database thread
    can tell (a +tag, an alias, someone else's address, a rate counted in Redis or files)."""
    if not (address and rate_counted_in_memory() and _own_address(user_id, address, fetch_one)):
        return None
    return _rate_verdict(user_id)


def _rate_verdict(user_id: int) -> str:
    return replies.OK if take_send_slot(user_id) else replies.RATE_LIMITED


def rate_counted_in_memory() -> bool:
    """Whether send rates are counted in this process's memory (one server process, no
    Redis: mailhost/settings.py), where a count takes microseconds and never waits."""
    return isinstance(caches["default"], LocMemCache)


def take_send_slot(user_id: int) -> bool:
    """Per-user submission rate (messages per hour); False when the user is over it."""
    key = f"smtp:rate:{user_id}"
    try:  # one cache operation for every message but the first of the hour
        count = cache.incr(key)
    except ValueError:  # no count yet, or its hour is over: this message opens a window
        count = 1 if cache.add(key, 1, RATE_WINDOW_SECONDS) else cache.incr(key)
    return count <= settings.SUBMISSION_RATE_PER_HOUR
