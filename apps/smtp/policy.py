"""SMTP decisions that need the database: who may receive, who may send as whom, rates.

Plain synchronous functions; the handler runs them off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache

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
    found = accounts.resolve(address, use_catch_all=False)
    return found.user_ids == [user_id] or (user_id in found.user_ids and accounts.is_alias(address))


def check_sender(user_id: int, address: str) -> str:
    """MAIL FROM on submission, in one trip to a database thread: the address must be the
    user's (553 5.7.1), and the message must fit the user's hourly rate."""
    if not sender_owned(user_id, address):
        return replies.SENDER_NOT_OWNED
    if not take_send_slot(user_id):
        return replies.RATE_LIMITED
    return replies.OK


def take_send_slot(user_id: int) -> bool:
    """Per-user submission rate (messages per hour); False when the user is over it."""
    key = f"smtp:rate:{user_id}"
    cache.add(key, 0, RATE_WINDOW_SECONDS)
    try:
        count = cache.incr(key)
    except ValueError:
        cache.add(key, 1, RATE_WINDOW_SECONDS)
        count = 1
    return count <= settings.SUBMISSION_RATE_PER_HOUR
