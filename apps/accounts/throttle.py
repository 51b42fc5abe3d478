"""Failed-login throttle shared by SMTP, IMAP, POP3 and the web.

Failures are counted per client IP and per account in the cache (Redis when scaled out,
so every node sees them). After a few failures each further attempt waits longer before
it is answered; past a ceiling the client is refused outright until the window passes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.core.cache import cache

from apps.accounts.addresses import normalise

WINDOW_SECONDS = 15 * 60
FREE_FAILURES = 3  # typos happen; the first few failures cost nothing
MAX_DELAY_SECONDS = 15.0
BLOCK_AFTER_IP = 30  # failures per IP in the window before the IP is refused
BLOCK_AFTER_ACCOUNT = 10  # failures per account in the window before it is refused


@dataclass(frozen=True)
class Verdict:
    blocked: bool
    delay: float  # seconds to wait before answering a failed attempt


def _keys(ip: str, address: str) -> tuple[str, str]:
    # The account is whatever the client typed: hashed, so that control characters,
    # spaces or a kilobyte of text never make a cache key a backend refuses.
    account = (normalise(address) or address.lower()).encode("utf-8", "surrogateescape")
    return f"authfail:ip:{ip}", f"authfail:acct:{hashlib.sha256(account).hexdigest()}"


def _failures(ip: str, address: str) -> tuple[int, int]:
    ip_key, account_key = _keys(ip, address)
    counts = cache.get_many([ip_key, account_key])
    return counts.get(ip_key, 0), counts.get(account_key, 0)


def check(ip: str, address: str) -> Verdict:
    """Whether this client may try now, and how long a failure will make it wait."""
    by_ip, by_account = _failures(ip, address)
    blocked = by_ip >= BLOCK_AFTER_IP or by_account >= BLOCK_AFTER_ACCOUNT
    worst = max(by_ip, by_account)
    delay = 0.0 if worst < FREE_FAILURES else min(2.0 ** (worst - FREE_FAILURES), MAX_DELAY_SECONDS)
    return Verdict(blocked=blocked, delay=delay)


def record_failure(ip: str, address: str) -> None:
    for key in _keys(ip, address):
        if not cache.add(key, 1, WINDOW_SECONDS):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, WINDOW_SECONDS)


def record_success(ip: str, address: str) -> None:
    """A correct password clears the account's count (not the IP's: a shared NAT
    with one honest user must not hide an attacker)."""
    cache.delete(_keys(ip, address)[1])
