"""DMARC (RFC 7489): does SPF or DKIM vouch for the From domain, and what does its owner ask?

Organisational domains come from the public suffix list bundled with `publicsuffixlist`
(no network). SPF and DKIM results come in from `spf.check_spf` and `dkim.verify`.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from email import policy as email_policy
from email.errors import HeaderParseError
from email.headerregistry import AddressHeader
from email.parser import BytesHeaderParser
from functools import cache, lru_cache

from publicsuffixlist import PublicSuffixList

from apps.mailauth.dkim import DKIMResult
from apps.mailauth.dns import NotFound, Resolver, TempError
from apps.mailauth.spf import SPFResult

DISPOSITIONS = ("none", "quarantine", "reject")  # least to most severe (RFC 7489 §6.3 "p")
# How bad each result is, for picking the verdict among several From domains.
RESULT_RANK = {"pass": 0, "none": 1, "permerror": 2, "temperror": 3, "fail": 4}
# RFC 7489 §6.6.3 step 2: only records starting with the current version tag count.
VERSION = re.compile(r"v\s*=\s*DMARC1\s*(;|$)")
REPORT_URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:\S+")  # RFC 3986 scheme ":" something


@dataclass(frozen=True)
class DMARCRecord:
    """A policy record's tags (RFC 7489 §6.3), defaults filled in."""

    p: str
    sp: str
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()


@dataclass(frozen=True)
class DMARCResult:
    """The DMARC verdict for a message, and the disposition its author domain asks for."""

    result: str  # pass, fail, none, temperror or permerror (RFC 7489 §11.2)
    disposition: str = "none"  # none, quarantine or reject: what to do with the message
    from_domain: str = ""  # the RFC5322.From domain evaluated ("" when there is none)
    policy_domain: str = ""  # where the record was found: the From or organisational domain
    record: DMARCRecord | None = None
    policy: str = ""  # the p= or sp= that applied
    spf_aligned: bool = False
    dkim_aligned: bool = False
    reason: str = ""


_suffix_list_lock = threading.Lock()


def _suffix_list() -> PublicSuffixList:
    # Loading takes a moment (60 ms of CPU): under a lock, or every session that asks
    # meanwhile parses the list too (ten concurrent first messages parsed it ten times).
    with _suffix_list_lock:
        return _loaded_suffix_list()


@cache
def _loaded_suffix_list() -> PublicSuffixList:
    return PublicSuffixList()  # the list shipped with the package


def load_suffix_list() -> None:
    """Parse the suffix list now (about a second of CPU), not in the first message's DMARC
    check: the MX listener calls this on a thread as it starts."""
    _suffix_list()


@lru_cache(maxsize=4096)
def organizational_domain(domain: str) -> str:
    """The registered domain: public suffix plus one label (RFC 7489 §3.2). Cached: the
    suffix list lookup costs a few hundred microseconds, and senders repeat."""
    domain = domain.lower().rstrip(".")
    return _suffix_list().privatesuffix(domain) or domain


def _a_label(domain: str) -> str | None:
    """The domain as DNS carries it, or None if it is not a domain name at all."""
    domain = domain.strip().rstrip(".")
    if not domain or domain.startswith("["):  # empty, or an address literal
        return None
    try:
        # 8-bit header bytes come through the parser as surrogates.
        text = domain.encode("utf-8", "surrogateescape").decode("utf-8")
        # RFC 7489 §6.6.1: a U-label author domain is converted to an A-label.
        return text.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


# What the email package's header parsers raise on some malformed values besides their
# own HeaderParseError ("From: <" and "Message-ID: <\\@" with Python 3.11).
PARSER_FAILURES = (HeaderParseError, IndexError, AttributeError, TypeError, ValueError)
# The From values most mail carries, whose domain needs no parser: "local@domain" or
# "Display Name <local@domain>" (atoms, or one quoted-string without escapes), in RFC 5322
# §3.4.1 dot-atom form. Anything else (comments, groups, several addresses, obsolete
# syntax, address literals, 8-bit) goes to the full parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR_SPEC = rf"{_ATEXT}(?:\.{_ATEXT})*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)"
SIMPLE_FROM = re.compile(
    rf"{_ADDR_SPEC}|(?:{_ATEXT}(?:[ \t]+{_ATEXT})*|\"[^\"\\\r\n]*\")?[ \t]*<{_ADDR_SPEC}>"
)


def from_domains(value: str) -> list[str]:
    """The domains of the mailboxes in one From value (unfolded)."""
    if simple := SIMPLE_FROM.fullmatch(value.strip(" \t")):
        return [simple.group(1) or simple.group(2)]
    try:
        parsed = AddressHeader.value_parser(value)
        return [m.domain or "" for a in parsed.addresses for m in a.all_mailboxes]
    except PARSER_FAILURES:  # no author domain: DMARC's permerror (RFC 7489 §6.6.1)
        return []


def author_domains(message: bytes) -> list[str]:
    """Every distinct domain in every From field of `message`, in order.

    The header section alone is parsed, and each From value goes straight to the parser
    the email package's header registry uses (RFC 5322 §3.4 address-list, strict about
    the tricks that make a domain look like another): the registry's own wrapping made
    this half of the cost of DMARC on every inbound message."""
    end = message.find(b"\r\n\r\n")
    head = message[: end + 4] if end != -1 else message
    headers = BytesHeaderParser(policy=email_policy.default).parsebytes(head)
    domains: list[str] = []
    for name, raw in headers.raw_items():
        if name.lower() != "from":
            continue
        unfolded = "".join(raw.splitlines())  # as the default policy unfolds a value
        for name in from_domains(unfolded):
            domain = _a_label(name)
            if domain and domain not in domains:
                domains.append(domain)
    return domains


def _report_uris(value: str) -> tuple[str, ...]:
    uris = (u.strip() for u in value.split(","))
    return tuple(u for u in uris if REPORT_URI.fullmatch(u))


def _tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip(), value.strip())
    return tags


def _mode(value: str) -> str:
    """An alignment mode: "s" (strict) or the default "r" (relaxed)."""
    return "s" if value.lower() == "s" else "r"


def parse_record(text: str) -> DMARCRecord:
    """Parse a DMARC TXT record; ValueError when it gives no usable policy.

    Tags with bad values fall back to their defaults (RFC 7489 §6.3); unknown tags are
    ignored. A missing or bad p= (or a bad sp=) is read as p=none when the record names
    a report address, and is an error otherwise (RFC 7489 §6.6.3 step 6).
    """
    if not VERSION.match(text):
        raise ValueError("not a DMARC1 record")
    tags = _tags(text)
    p, sp = tags.get("p", "").lower(), tags.get("sp", "").lower()
    rua = _report_uris(tags.get("rua", ""))
    if p not in DISPOSITIONS or (sp and sp not in DISPOSITIONS):
        if not rua:
            raise ValueError("no valid p= policy")
        p, sp = "none", "none"
    pct = tags.get("pct", "")
    return DMARCRecord(
        p=p,
        sp=sp or p,  # RFC 7489 §6.3: sp defaults to p
        adkim=_mode(tags.get("adkim", "")),
        aspf=_mode(tags.get("aspf", "")),
        pct=int(pct) if pct.isdigit() and int(pct) <= 100 else 100,
        rua=rua,
        ruf=_report_uris(tags.get("ruf", "")),
    )


def _records_at(domain: str, resolver: Resolver) -> list[str]:
    try:
        texts = resolver.txt(f"_dmarc.{domain}")
    except NotFound:
        return []
    return [t for t in texts if VERSION.match(t)]


def _discover(domain: str, resolver: Resolver) -> tuple[str, list[str]]:
    """(policy domain, records): the From domain's, else its organisational domain's.

    RFC 7489 §6.6.3 steps 1-3; raises dns.TempError.
    """
    records = _records_at(domain, resolver)
    org = organizational_domain(domain)
    if records or org == domain:
        return domain, records
    return org, _records_at(org, resolver)


def aligned(identifier: str, from_domain: str, mode: str) -> bool:
    """Identifier alignment (RFC 7489 §3.1): strict is equality, relaxed same org domain."""
    identifier = identifier.lower().rstrip(".")
    if not identifier:
        return False
    if mode == "s":
        return identifier == from_domain
    return organizational_domain(identifier) == organizational_domain(from_domain)


def _disposition(policy: str, pct: int, sample: float) -> str:
    """The disposition for a failing message: the policy, for a pct sample of them."""
    if sample * 100 >= pct:
        # RFC 7489 §6.6.4: messages left out of the sample get the next less severe policy.
        return DISPOSITIONS[max(DISPOSITIONS.index(policy) - 1, 0)]
    return policy


def _evaluate(
    from_domain: str,
    spf: SPFResult,
    dkim: Sequence[DKIMResult],
    resolver: Resolver,
    sample: Callable[[], float],
) -> DMARCResult:
    """The DMARC verdict for one author domain (RFC 7489 §6.6.2-§6.6.4)."""
    try:
        policy_domain, records = _discover(from_domain, resolver)
    except TempError as exc:
        return DMARCResult("temperror", from_domain=from_domain, reason=str(exc))
    found = DMARCResult("none", from_domain=from_domain, policy_domain=policy_domain)
    if not records:
        return replace(found, reason="no DMARC record")
    if len(records) > 1:
        return replace(found, result="permerror", reason="several DMARC records")
    try:
        record = parse_record(records[0])
    except ValueError as exc:
        return replace(found, result="permerror", reason=str(exc))
    spf_ok = spf.result == "pass" and aligned(spf.domain, from_domain, record.aspf)
    dkim_ok = any(r.result == "pass" and aligned(r.domain, from_domain, record.adkim) for r in dkim)
    # RFC 7489 §6.3: sp is for subdomains whose policy came from the organisational domain.
    policy = record.p if policy_domain == from_domain else record.sp
    found = replace(found, record=record, policy=policy, spf_aligned=spf_ok, dkim_aligned=dkim_ok)
    if spf_ok or dkim_ok:
        return replace(found, result="pass")
    if _aligned_temperror(from_domain, record, spf, dkim):
        # An aligned identifier might still pass: do not apply the policy on a DNS hiccup.
        return replace(found, result="temperror", reason="SPF or DKIM lookup failed")
    disposition = _disposition(policy, record.pct, sample())
    return replace(found, result="fail", disposition=disposition, reason="not aligned")


def _aligned_temperror(
    from_domain: str, record: DMARCRecord, spf: SPFResult, dkim: Sequence[DKIMResult]
) -> bool:
    if spf.result == "temperror" and aligned(spf.domain, from_domain, record.aspf):
        return True
    return any(
        r.result == "temperror" and aligned(r.domain, from_domain, record.adkim) for r in dkim
    )


def _severity(result: DMARCResult) -> tuple[int, int]:
    return DISPOSITIONS.index(result.disposition), RESULT_RANK[result.result]


def check_dmarc(
    message: bytes,
    spf: SPFResult,
    dkim: Sequence[DKIMResult],
    resolver: Resolver,
    *,
    sample: Callable[[], float] = random.random,
) -> DMARCResult:
    """Evaluate DMARC for the author domains of `message`.

    RFC 7489 §6.6.1: with several From domains (several addresses, or several From
    fields) each is evaluated and the most severe outcome is returned, so a second
    From cannot hide a spoofed one. With no From domain at all there is nothing to
    evaluate: permerror, disposition none (whether to refuse such a message, which
    RFC 5322 §3.6 forbids, is the receiving server's own policy).
    `sample` draws the pct sampling number in [0, 1).
    """
    domains = author_domains(message)
    if not domains:
        return DMARCResult("permerror", reason="no RFC5322.From domain")
    verdicts = [_evaluate(d, spf, dkim, resolver, sample) for d in domains]
    return max(verdicts, key=_severity)
