"""Where mail for a domain goes: MX hosts in preference order, the domain itself when it has
no MX, nowhere for a null MX; or the smart host when one is configured (RFC 5321 §5.1)."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

from apps.mailauth.dns import NotFound, NXDomain, Resolver, TempError
from apps.relay import results
from apps.relay.results import RcptResult

NULL_MX_HOST = "."  # RFC 7505 §3: "MX 0 ." says the domain accepts no mail


@dataclass(frozen=True)
class Hop:
    """One server to try: its name (for TLS and logs), its addresses and the port."""

    host: str
    addresses: tuple[str, ...]
    port: int


class NoRoute(Exception):
    """No server can be tried now; `result` says whether that is final."""

    def __init__(self, result: RcptResult) -> None:
        super().__init__(result.diagnostic)
        self.result = result


def order_mx(records: Sequence[tuple[int, str]], rng: random.Random) -> list[str]:
    """Hosts by preference, lowest first, equal preferences shuffled to spread the load
    (RFC 5321 §5.1); a host listed twice is tried once."""
    hosts: list[str] = []
    for _, group in groupby(sorted(records), key=lambda record: record[0]):
        same = [host.lower().rstrip(".") for _, host in group]
        rng.shuffle(same)
        hosts += [h for h in same if h not in hosts]
    return hosts


def is_null_mx(records: Sequence[tuple[int, str]]) -> bool:
    """RFC 7505 §3: one MX record whose exchange is the root."""
    return len(records) == 1 and records[0][1] == NULL_MX_HOST


def _host_addresses(host: str, resolver: Resolver) -> tuple[list[str], bool]:
    """(addresses, whether a lookup failed temporarily). IPv4 first: many servers have no
    IPv6 route out, and trying IPv4 first spares them a wasted connection."""
    try:
        return [str(ipaddress.ip_address(host))], False
    except ValueError:
        pass
    addresses: list[str] = []
    failed = False
    for lookup in (resolver.a, resolver.aaaa):
        try:
            addresses += lookup(host)
        except NotFound:
            continue
        except TempError:
            failed = True
    return addresses, failed


def find_route(
    domain: str, resolver: Resolver, port: int, rng: random.Random | None = None
) -> list[Hop]:
    """The hops to try for `domain`, or `NoRoute` with a temporary or permanent result."""
    implicit = False
    try:
        records = resolver.mx(domain)
    except NXDomain:
        raise NoRoute(
            results.permanent(results.BAD_DESTINATION, f"{domain}: no such domain")
        ) from None
    except NotFound:
        records, implicit = [(0, domain)], True  # no MX: the domain is its own host (§5.1)
    except TempError as exc:
        raise NoRoute(results.temporary(results.ROUTING_TEMPORARY, f"MX lookup: {exc}")) from None
    if is_null_mx(records):
        raise NoRoute(results.permanent(results.NULL_MX, f"{domain} accepts no mail (null MX)"))
    hosts = order_mx([r for r in records if r[1] != NULL_MX_HOST], rng or random.Random())
    return _resolve_hops(domain, hosts, resolver, port, implicit=implicit)


def _resolve_hops(
    domain: str, hosts: list[str], resolver: Resolver, port: int, *, implicit: bool
) -> list[Hop]:
    hops = []
    unresolved = False
    for host in hosts:
        addresses, failed = _host_addresses(host, resolver)
        unresolved = unresolved or failed
        if addresses:
            hops.append(Hop(host, tuple(addresses), port))
    if hops:
        return hops
    if implicit and not unresolved:
        # Neither MX nor an address: nobody receives mail for this name.
        raise NoRoute(results.permanent(results.BAD_DESTINATION, f"{domain}: no mail server"))
    # MX hosts that do not resolve are usually a passing misconfiguration: try again later.
    raise NoRoute(
        results.temporary(results.ROUTING_TEMPORARY, f"{domain}: no MX host has an address")
    )


def smarthost_route(host: str, port: int, resolver: Resolver) -> list[Hop]:
    addresses, _ = _host_addresses(host, resolver)
    if not addresses:
        raise NoRoute(
            results.temporary(results.ROUTING_TEMPORARY, f"smart host {host}: no address")
        )
    return [Hop(host, tuple(addresses), port)]
