"""SPF (RFC 7208): is this client IP allowed to send for the MAIL FROM (or HELO) domain?

The evaluation is pyspf's; only its DNS goes through our `Resolver`, so tests and
production choose the servers. Results come back as an `SPFResult`, with the
`Received-SPF:` header field (RFC 7208 §9.1) ready to prepend.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name
import dns.reversename
import spf

from apps.mailauth.dns import NotFound, Resolver, TempError

RESULTS = ("pass", "fail", "softfail", "neutral", "none", "permerror", "temperror")


@dataclass(frozen=True)
class SPFResult:
    """One SPF check_host() outcome (RFC 7208 §2.6) and what it was about."""

    result: str  # one of RESULTS
    explanation: str
    domain: str  # the domain whose policy was evaluated
    identity: str  # "mailfrom", or "helo" when MAIL FROM was empty (RFC 7208 §2.4)
    sender: str  # MAIL FROM, or postmaster@HELO
    helo: str
    client_ip: str
    received_spf: str  # the whole "Received-SPF: ..." field, unfolded, no CRLF

    @property
    def smtp_property(self) -> tuple[str, str]:
        """The RFC 8601 §2.7.2 property naming what was checked: smtp.mailfrom or smtp.helo."""
        if self.identity == "helo":
            return "smtp.helo", self.helo
        return "smtp.mailfrom", self.sender


class _Query(spf.query):
    """pyspf's evaluator with DNS answered by our resolver.

    pyspf has no per-query DNS hook: its lookups go through the module-global
    `spf.DNSLookup`, which would be shared by every thread. `query.dns` is the one
    method all its lookups pass through, so it is overridden here, keeping pyspf's
    caching per query and its void-lookup limit.
    """

    def __init__(self, resolver: Resolver, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resolver = resolver

    def dns(
        self, name: str, qtype: str, cnames: object = None, ignore_void: bool = False
    ) -> list[Any]:
        name = str(name).rstrip(".").lower()
        if not all(0 < len(label) < 64 for label in name.split(".")):
            return []  # no name DNS can carry (the root of a null MX, too): pyspf's rule
        key = (name, qtype)
        if key not in self.cache:
            self.cache[key] = self._lookup(name, qtype)
        result: list[Any] = self.cache[key]
        if not result and not ignore_void:
            # RFC 7208 §4.6.4: more than two lookups answering nothing is a permerror.
            self.void_lookups += 1
            if self.void_lookups > spf.MAX_VOID_LOOKUPS:
                raise spf.PermError(f"Void lookup limit of {spf.MAX_VOID_LOOKUPS} exceeded")
        return result

    def _lookup(self, name: str, qtype: str) -> list[Any]:
        """Answers in the shapes pyspf expects (see pyspf's DNSLookup_dnspython)."""
        try:
            if qtype == "TXT":
                return [[text.encode()] for text in self.resolver.txt(name)]
            if qtype == "A":
                return self.resolver.a(name)
            if qtype == "AAAA":
                return self.resolver.aaaa(name)
            if qtype == "MX":
                return self.resolver.mx(name)
            if qtype == "PTR":
                return self.resolver.ptr(_address_of(name))
        except NotFound:
            return []
        except TempError as exc:
            raise spf.TempError(f"DNS {exc}") from exc
        return []  # type 99 "SPF" records are obsolete (RFC 7208 §3.1)


def _address_of(reverse_name: str) -> str:
    """The IP address of an in-addr.arpa / ip6.arpa name, as built by pyspf for "ptr"."""
    try:
        return dns.reversename.to_address(dns.name.from_text(reverse_name))
    except dns.exception.SyntaxError as exc:
        raise spf.PermError(f"bad reverse name {reverse_name}") from exc


def check_spf(
    ip: str,
    mail_from: str,
    helo: str,
    resolver: Resolver,
    *,
    receiver: str = "unknown",
) -> SPFResult:
    """Run check_host() for the MAIL FROM identity, or HELO when MAIL FROM is empty.

    `ip` is the SMTP client's address; `receiver` (our host name) goes into the header.
    """
    client_ip = str(ipaddress.ip_address(ip))  # ValueError for a bad address: a caller bug
    if not mail_from and not helo:
        return _nothing_to_check(client_ip, receiver)
    query = _Query(resolver, i=client_ip, s=mail_from, h=helo, receiver=receiver)
    result, _code, explanation = query.check()
    return SPFResult(
        result=result,
        explanation=explanation,
        domain=query.o,
        identity=query.ident,
        sender=query.s,
        helo=helo,
        client_ip=client_ip,
        received_spf="Received-SPF: " + query.get_header(result, receiver),
    )


def _nothing_to_check(client_ip: str, receiver: str) -> SPFResult:
    # Neither identity is known, so there is no domain to ask (RFC 7208 §4.3: "none").
    comment = f"{receiver}: no sender domain to check"
    header = f"Received-SPF: none ({comment}) client-ip={client_ip}; receiver={receiver}"
    return SPFResult("none", "", "", "mailfrom", "", "", client_ip, header)
