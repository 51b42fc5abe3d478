"""DNS adapter on dnspython: the few lookups mail needs, with errors mail can act on.

SPF, DKIM, DMARC and relay (MX routing) take a `Resolver` as an argument, so tests point
it at a DNS server on 127.0.0.1 and production at the configured or system resolvers.
"""

from __future__ import annotations

import ipaddress
import threading

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.resolver
import dns.reversename
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA

DEFAULT_TIMEOUT = 5.0  # seconds for a whole lookup, retries included
DNS_PORT = 53

Nameservers = list[tuple[str, int]]


class DNSError(Exception):
    """A lookup did not give records."""


class NotFound(DNSError):
    """The name or the records do not exist: a final answer, not worth a retry."""


class NXDomain(NotFound):
    """The name does not exist (RCODE 3, RFC 1035 §4.1.1)."""


class NoRecords(NotFound):
    """The name exists but has no records of the asked type (NODATA, RFC 2308 §2.2)."""


class TempError(DNSError):
    """SERVFAIL, refusal or timeout: the answer may differ later."""


def _mapped(exc: dns.exception.DNSException, name: str, rdtype: str) -> DNSError:
    """Turn dnspython's exceptions into the three outcomes mail checks care about."""
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return NXDomain(f"{name}: no such domain")
    if isinstance(exc, dns.resolver.NoAnswer):
        return NoRecords(f"{name}: no {rdtype} records")
    if isinstance(exc, (dns.exception.SyntaxError, dns.name.NameTooLong, dns.name.IDNAException)):
        # Empty or over-long labels, bad IDNA: a name DNS cannot even carry cannot exist.
        return NXDomain(f"{name!r}: invalid domain name ({exc})")
    if isinstance(exc, dns.exception.Timeout):
        return TempError(f"{name} {rdtype}: timed out")
    # NoNameservers (SERVFAIL or REFUSED from every server), YXDOMAIN, bad replies...
    return TempError(f"{name} {rdtype}: {exc}")


def _txt_strings(answer: dns.resolver.Answer) -> list[str]:
    # One record may hold several character-strings; they are concatenated without
    # separator (RFC 7208 §3.3, RFC 6376 §3.6.2.2, RFC 7489 §6.1).
    texts = []
    for rdata in answer:
        assert isinstance(rdata, TXT)
        texts.append(b"".join(rdata.strings).decode("utf-8", "replace"))
    return texts


def _mx_hosts(answer: dns.resolver.Answer) -> list[tuple[int, str]]:
    hosts = []
    for rdata in answer:
        assert isinstance(rdata, MX)
        # A "null MX" (RFC 7505 §3) has the root as exchange; it comes out as ".".
        host = "." if rdata.exchange == dns.name.root else rdata.exchange.to_text(True)
        hosts.append((rdata.preference, host))
    return sorted(hosts)


def _addresses(answer: dns.resolver.Answer) -> list[str]:
    addresses = []
    for rdata in answer:
        assert isinstance(rdata, (A, AAAA))
        addresses.append(rdata.address)
    return addresses


def _targets(answer: dns.resolver.Answer) -> list[str]:
    targets = []
    for rdata in answer:
        assert isinstance(rdata, PTR)
        targets.append(rdata.target.to_text(True))
    return targets


def _dnspython(
    factory: type[dns.resolver.BaseResolver], nameservers: Nameservers | None, timeout: float
) -> dns.resolver.BaseResolver:
    # Only read /etc/resolv.conf when no nameservers are given: tests and configured
    # deployments must never fall back to the system's resolvers.
    resolver = factory(configure=nameservers is None)
    if nameservers is not None:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in nameservers]
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


def _reverse_name(ip: str) -> str:
    return dns.reversename.from_address(str(ipaddress.ip_address(ip))).to_text()


class Resolver:
    """Blocking lookups; every method raises `NXDomain`, `NoRecords` or `TempError`.

    Names are taken as absolute ("example.org" means "example.org."); names in answers
    come back without the final dot.
    """

    def __init__(
        self,
        nameservers: Nameservers | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        cache: dns.resolver.LRUCache | None = None,
    ) -> None:
        self.nameservers = nameservers
        self.timeout = timeout
        resolver = _dnspython(dns.resolver.Resolver, nameservers, timeout)
        assert isinstance(resolver, dns.resolver.Resolver)
        resolver.cache = cache
        self._resolver = resolver

    def _resolve(self, name: str, rdtype: str) -> dns.resolver.Answer:
        try:
            return self._resolver.resolve(dns.name.from_text(name), rdtype, search=False)
        except dns.exception.DNSException as exc:
            raise _mapped(exc, name, rdtype) from exc

    def txt(self, name: str) -> list[str]:
        """Each TXT record at `name`, its strings joined."""
        return _txt_strings(self._resolve(name, "TXT"))

    def mx(self, name: str) -> list[tuple[int, str]]:
        """(preference, host) pairs, lowest preference first."""
        return _mx_hosts(self._resolve(name, "MX"))

    def a(self, name: str) -> list[str]:
        return _addresses(self._resolve(name, "A"))

    def aaaa(self, name: str) -> list[str]:
        return _addresses(self._resolve(name, "AAAA"))

    def ptr(self, ip: str) -> list[str]:
        """Host names for an IPv4 or IPv6 address (reverse lookup in in-addr.arpa/ip6.arpa)."""
        return _targets(self._resolve(_reverse_name(ip), "PTR"))


class AsyncResolver:
    """The same lookups as `Resolver`, awaitable (dns.asyncresolver), for the asyncio servers."""

    def __init__(
        self, nameservers: Nameservers | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.nameservers = nameservers
        self.timeout = timeout
        resolver = _dnspython(dns.asyncresolver.Resolver, nameservers, timeout)
        assert isinstance(resolver, dns.asyncresolver.Resolver)
        self._resolver = resolver

    async def _resolve(self, name: str, rdtype: str) -> dns.resolver.Answer:
        try:
            return await self._resolver.resolve(dns.name.from_text(name), rdtype, search=False)
        except dns.exception.DNSException as exc:
            raise _mapped(exc, name, rdtype) from exc

    async def txt(self, name: str) -> list[str]:
        return _txt_strings(await self._resolve(name, "TXT"))

    async def mx(self, name: str) -> list[tuple[int, str]]:
        return _mx_hosts(await self._resolve(name, "MX"))

    async def a(self, name: str) -> list[str]:
        return _addresses(await self._resolve(name, "A"))

    async def aaaa(self, name: str) -> list[str]:
        return _addresses(await self._resolve(name, "AAAA"))

    async def ptr(self, ip: str) -> list[str]:
        return _targets(await self._resolve(_reverse_name(ip), "PTR"))

    def blocking(self) -> Resolver:
        """A blocking twin with the same servers, for checks run in a worker thread."""
        return Resolver(self.nameservers, self.timeout)


def _parse_one(entry: str) -> tuple[str, int]:
    """'1.2.3.4', '1.2.3.4:5353', '[::1]', '[::1]:53' or '::1:53' (bare IPv6 needs a port)."""
    host, port = entry, str(DNS_PORT)
    if entry.startswith("["):
        host, sep, rest = entry[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad DNS server {entry!r}: expected [address]:port")
        port = rest[1:] or port
    elif ":" in entry:
        host, port = entry.rsplit(":", 1)
    try:
        address = ipaddress.ip_address(host)
        number = int(port)
    except ValueError as exc:
        raise ValueError(f"bad DNS server {entry!r}: {exc}") from exc
    if not 0 < number < 65536:
        raise ValueError(f"bad DNS server {entry!r}: port out of range")
    return str(address), number


def parse_nameservers(text: str | None) -> Nameservers | None:
    """Parse "127.0.0.1:5353,[::1]:53"; None or blank means "use the system's resolvers"."""
    entries = [e.strip() for e in (text or "").split(",") if e.strip()]
    return [_parse_one(e) for e in entries] or None


_shared: dict[tuple[str | None, float], Resolver] = {}
_shared_lock = threading.Lock()
CACHE_SIZE = 10000  # answers kept, each for its TTL


def resolver_from_settings(nameservers: str | None, timeout: float = DEFAULT_TIMEOUT) -> Resolver:
    """The process's `Resolver` for the MAILHOST_DNS_SERVERS setting (see
    `parse_nameservers`), with a cache that honours TTLs: every message from one domain
    asks for the same SPF and DMARC records."""
    key = (nameservers, timeout)
    with _shared_lock:
        if key not in _shared:
            cache = dns.resolver.LRUCache(CACHE_SIZE)
            _shared[key] = Resolver(parse_nameservers(nameservers), timeout, cache=cache)
        return _shared[key]
