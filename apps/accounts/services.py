"""Account services: who an address reaches, password checks, and provisioning."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from apps.accounts import throttle
from apps.accounts.addresses import normalise, split_address, strip_subaddress
from apps.accounts.models import Alias, AppPassword, Domain, User
from apps.mailstore import plainsql
from apps.mailstore.plainsql import FetchOne

# Aliases may point at aliases; stop following after this many hops (loops, typos).
MAX_ALIAS_DEPTH = 10


@dataclass
class Recipients:
    """Where mail for one address goes: local users (by id) and remote addresses."""

    user_ids: list[int] = field(default_factory=list)
    external: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.user_ids or self.external)

    def add(self, other: Recipients) -> None:
        self.user_ids += [u for u in other.user_ids if u not in self.user_ids]
        self.external += [e for e in other.external if e not in self.external]


def is_local_domain(domain_name: str) -> bool:
    """True when the domain is ours (active or not: we never relay for our own domains)."""
    return Domain.objects.filter(name=domain_name.lower().rstrip(".")).exists()


@dataclass
class Lookup:
    """What one query tells of an address: whether its domain is ours and, when the
    address is a user's own, who receives it (None: only `resolve` can tell)."""

    is_local: bool
    recipients: Recipients | None = None


def lookup(address: str, fetch_one: FetchOne = plainsql.fetch_one) -> Lookup:
    """RCPT's common case in one query: a user's own address at one of our domains.

    Runs for every recipient of every message, so it is one plain SELECT; aliases,
    +tags and catch-alls (recipients None) go through `resolve`, which this agrees with.
    """
    local, domain_name = split_address(address)
    if not domain_name:
        return Lookup(is_local=False)
    row = fetch_one(
        f"SELECT d.is_active, u.id, u.is_active FROM {Domain._meta.db_table} d "
        f"LEFT JOIN {User._meta.db_table} u ON u.domain_id = d.id AND u.local_part = %s "
        "WHERE d.name = %s",
        [local.lower(), domain_name],
    )
    if row is None:
        return Lookup(is_local=False)
    domain_active, user_id, user_active = row
    if not domain_active:
        return Lookup(is_local=True, recipients=Recipients())
    if user_id is None:
        return Lookup(is_local=True)
    return Lookup(is_local=True, recipients=Recipients(user_ids=[user_id] if user_active else []))


def resolve(address: str, _depth: int = 0, *, use_catch_all: bool = True) -> Recipients:
    """Who receives mail sent to `address`. Empty when nobody here does.

    Order: an enabled user; an alias; the same two without a +tag; the domain's catch-all.
    A disabled user or domain receives nothing. Remote addresses (reached through an alias)
    come back in `external` for the relay.
    """
    local, domain_name = split_address(address)
    if not domain_name or _depth > MAX_ALIAS_DEPTH:
        return Recipients()
    domain = Domain.objects.filter(name=domain_name).first()
    if domain is None:
        return Recipients(external=[normalise(address)]) if _depth else Recipients()
    if not domain.is_active:
        return Recipients()
    found = _resolve_local_part(domain, local.lower(), _depth)
    if found is None and (base := strip_subaddress(local.lower())):
        found = _resolve_local_part(domain, base, _depth)
    if found is None and domain.catch_all and use_catch_all:
        found = resolve(domain.catch_all, _depth + 1)
    return found or Recipients()


def is_alias(address: str) -> bool:
    local, domain_name = split_address(address)
    base = strip_subaddress(local.lower()) or local.lower()
    return Alias.objects.filter(
        domain__name=domain_name, local_part__in=[local.lower(), base], is_active=True
    ).exists()


def _resolve_local_part(domain: Domain, local: str, depth: int) -> Recipients | None:
    user = User.objects.filter(domain=domain, local_part=local).only("id", "is_active").first()
    if user is not None:
        return Recipients(user_ids=[user.pk]) if user.is_active else Recipients()
    alias = Alias.objects.filter(domain=domain, local_part=local, is_active=True).first()
    if alias is None:
        return None
    result = Recipients()
    for target in alias.target_list():
        result.add(resolve(target, depth + 1))
    return result


def _auth_cache_key(user: User, password: str) -> str:
    # Keyed by the stored hash too, so changing the password forgets earlier successes.
    mac = hmac.new(settings.SECRET_KEY.encode(), digestmod=hashlib.sha256)
    mac.update(f"{user.pk}\0{user.password}\0{password}".encode())
    return "auth:" + mac.hexdigest()


def check_credentials(address: str, password: str) -> User | None:
    """The enabled user whose address and password (or app password) these are, else None.

    The single password check for SMTP, IMAP, POP3 and the web. A success is remembered
    for AUTH_CACHE_SECONDS so clients that reconnect often skip the slow hash.
    """
    email = normalise(address)
    if not email or not password:
        return None
    user = User.objects.select_related("domain").filter(email=email).first()
    if user is None or not user.is_active or not user.domain.is_active:
        User().set_password(password)  # Same cost as a real check: no user enumeration.
        return None
    key = _auth_cache_key(user, password)
    cached = cache.get(key)
    # The cache remembers which credential matched: 0 for the password, else the app
    # password's id, which must still exist (a revoked app password stops at once).
    if cached == 0 or (cached and AppPassword.objects.filter(pk=cached, user=user).exists()):
        return user
    credential = 0 if user.check_password(password) else _matching_app_password(user, password)
    if credential is None:
        return None
    cache.set(key, credential, settings.AUTH_CACHE_SECONDS)
    return user


def _matching_app_password(user: User, password: str) -> int | None:
    for app in AppPassword.objects.filter(user=user):
        if app.check_password(password):
            return app.pk
    return None


def generate_password() -> str:
    return secrets.token_urlsafe(12)


@transaction.atomic
def create_domain(name: str) -> Domain:
    return Domain.objects.create(name=name)


@transaction.atomic
def create_user(address: str, password: str, **fields) -> User:
    """A new user in an existing domain; their default folders come with them."""
    local, domain_name = split_address(address)
    if not domain_name:
        raise ValueError(f"{address!r} is not an address")
    return User.objects.create_user(f"{local.lower()}@{domain_name}", password, **fields)


@transaction.atomic
def create_alias(address: str, targets: list[str]) -> Alias:
    local, domain_name = split_address(address)
    domain = Domain.objects.get(name=domain_name)
    return Alias.objects.create(
        domain=domain, local_part=local.lower(), targets="\n".join(normalise(t) for t in targets)
    )


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    blocked: bool = False  # too many failures: refuse without checking
    delay: float = 0.0  # seconds the protocol waits before saying no


def login(address: str, password: str, ip: str) -> LoginResult:
    """Check a login from a client at `ip`, with the shared failed-login throttle."""
    verdict = throttle.check(ip, address)
    if verdict.blocked:
        return LoginResult(None, blocked=True)
    user = check_credentials(address, password)
    if user is None:
        throttle.record_failure(ip, address)
        return LoginResult(None, delay=throttle.check(ip, address).delay)
    throttle.record_success(ip, address)
    return LoginResult(user)
