"""DMARC (RFC 7489) against policy records served by the test DNS server."""

from __future__ import annotations

import random
from email.headerregistry import AddressHeader

import pytest

from apps.mailauth.dkim import DKIMResult
from apps.mailauth.dmarc import (
    PARSER_FAILURES,
    SIMPLE_FROM,
    DMARCRecord,
    DMARCResult,
    author_domains,
    check_dmarc,
    from_domains,
    organizational_domain,
    parse_record,
)
from apps.mailauth.spf import SPFResult
from tests.dnsserver import DNSZone

ZONE = """
_dmarc.example.org.      TXT "v=DMARC1; p=reject; sp=quarantine; rua=mailto:dmarc@example.org"
_dmarc.shop.example.org. TXT "v=DMARC1; p=none"
_dmarc.strict.example.   TXT "v=DMARC1; p=reject; adkim=s; aspf=s"
_dmarc.watch.example.    TXT "v=DMARC1; p=none"
_dmarc.half.example.     TXT "v=DMARC1; p=reject; pct=50"
"""


@pytest.fixture
def zone(dns_zone: DNSZone) -> DNSZone:
    dns_zone.server.add(ZONE)
    return dns_zone


def spf(result: str, domain: str) -> SPFResult:
    sender = f"bounce@{domain}"
    return SPFResult(result, "", domain, "mailfrom", sender, "client.test", "192.0.2.1", "")


def dkim(result: str, domain: str) -> DKIMResult:
    return DKIMResult(result, domain, "sel", "ed25519-sha256", "@" + domain, "abcdefgh")


NO_SPF = spf("none", "elsewhere.test")


def message(*from_fields: str) -> bytes:
    head = "".join(f"From: {f}\r\n" for f in from_fields)
    return f"{head}Subject: hi\r\n\r\nbody\r\n".encode()


def dmarc(
    zone: DNSZone, from_: str, spf_result: SPFResult, *dkims: DKIMResult, sample: float = 0.0
) -> DMARCResult:
    raw = message(from_)
    return check_dmarc(raw, spf_result, list(dkims), zone.resolver, sample=lambda: sample)


ALIGNMENT = {
    "spf aligned": ("a@example.org", spf("pass", "example.org"), [], "pass"),
    "spf relaxed": ("a@example.org", spf("pass", "bounce.example.org"), [], "pass"),
    "dkim aligned": ("a@example.org", NO_SPF, [dkim("pass", "example.org")], "pass"),
    "dkim relaxed": ("a@example.org", NO_SPF, [dkim("pass", "mail.example.org")], "pass"),
    "dkim of another domain": ("a@example.org", NO_SPF, [dkim("pass", "evil.test")], "fail"),
    "dkim failed": ("a@example.org", NO_SPF, [dkim("fail", "example.org")], "fail"),
    "spf failed": ("a@example.org", spf("fail", "example.org"), [], "fail"),
    "spf of another domain": ("a@example.org", spf("pass", "evil.test"), [], "fail"),
    "spf lookalike": ("a@example.org", spf("pass", "example.org.evil.test"), [], "fail"),
    "strict spf subdomain": ("a@strict.example", spf("pass", "mail.strict.example"), [], "fail"),
    "strict dkim subdomain": (
        "a@strict.example",
        NO_SPF,
        [dkim("pass", "d.strict.example")],
        "fail",
    ),
    "strict dkim exact": ("a@strict.example", NO_SPF, [dkim("pass", "strict.example")], "pass"),
    "one good signature": (
        "a@example.org",
        NO_SPF,
        [dkim("fail", "x.test"), dkim("pass", "example.org")],
        "pass",
    ),
    "no record": ("a@nopolicy.example", spf("pass", "nopolicy.example"), [], "none"),
}


@pytest.mark.parametrize(
    ("from_", "spf_result", "dkims", "expected"), ALIGNMENT.values(), ids=ALIGNMENT.keys()
)
def test_it_passes_only_aligned_authenticated_domains(
    zone: DNSZone, from_: str, spf_result: SPFResult, dkims: list[DKIMResult], expected: str
) -> None:
    assert dmarc(zone, from_, spf_result, *dkims).result == expected


@pytest.mark.parametrize(
    ("from_", "disposition", "policy_domain"),
    [
        ("a@example.org", "reject", "example.org"),  # p=reject
        ("a@news.example.org", "quarantine", "example.org"),  # sp= for subdomains
        ("a@shop.example.org", "none", "shop.example.org"),  # its own record wins
        ("a@watch.example", "none", "watch.example"),  # p=none: monitor only
    ],
)
def test_a_failing_message_gets_the_policy_of_its_domain(
    zone: DNSZone, from_: str, disposition: str, policy_domain: str
) -> None:
    result = dmarc(zone, from_, spf("fail", "example.org"))
    assert (result.result, result.disposition) == ("fail", disposition)
    assert result.policy_domain == policy_domain


def test_a_passing_message_gets_no_disposition(zone: DNSZone) -> None:
    result = dmarc(zone, "a@example.org", spf("pass", "example.org"))
    assert (result.result, result.disposition, result.policy) == ("pass", "none", "reject")
    assert (result.spf_aligned, result.dkim_aligned) == (True, False)


@pytest.mark.parametrize(("sample", "disposition"), [(0.49, "reject"), (0.5, "quarantine")])
def test_pct_applies_the_policy_to_a_sample_only(
    zone: DNSZone, sample: float, disposition: str
) -> None:
    # RFC 7489 §6.6.4: outside the sample, the next less severe policy applies.
    result = dmarc(zone, "a@half.example", NO_SPF, sample=sample)
    assert (result.result, result.disposition) == ("fail", disposition)


def test_a_failing_policy_lookup_is_a_temperror(zone: DNSZone) -> None:
    zone.server.servfail("_dmarc.example.org")
    result = dmarc(zone, "a@example.org", NO_SPF)
    assert (result.result, result.disposition) == ("temperror", "none")


def test_an_aligned_dkim_temperror_does_not_apply_the_policy(zone: DNSZone) -> None:
    result = dmarc(zone, "a@example.org", NO_SPF, dkim("temperror", "example.org"))
    assert (result.result, result.disposition) == ("temperror", "none")


def test_several_policy_records_are_a_permerror(zone: DNSZone) -> None:
    zone.server.add('_dmarc.watch.example. TXT "v=DMARC1; p=reject"')
    assert dmarc(zone, "a@watch.example", NO_SPF).result == "permerror"


def test_a_record_without_a_valid_policy_is_a_permerror(zone: DNSZone) -> None:
    zone.server.add('_dmarc.broken.example. TXT "v=DMARC1; p=bogus"')
    result = dmarc(zone, "a@broken.example", NO_SPF)
    assert (result.result, result.disposition) == ("permerror", "none")


def test_other_txt_records_at_dmarc_are_ignored(zone: DNSZone) -> None:
    zone.server.add('_dmarc.mixed.example. TXT "verification=123"')
    zone.server.add('_dmarc.mixed.example. TXT "v=DMARC1; p=quarantine"')
    assert dmarc(zone, "a@mixed.example", NO_SPF).disposition == "quarantine"


def test_the_strictest_of_several_from_addresses_applies(zone: DNSZone) -> None:
    # RFC 7489 §6.6.1: each author domain is checked; the most severe failure wins.
    raw = message("a@watch.example, b@example.org")
    result = check_dmarc(raw, NO_SPF, [], zone.resolver)
    assert (result.result, result.disposition, result.from_domain) == (
        "fail",
        "reject",
        "example.org",
    )


def test_a_second_from_field_cannot_hide_a_spoofed_one(zone: DNSZone) -> None:
    raw = message("a@watch.example", "b@example.org")
    result = check_dmarc(raw, spf("pass", "watch.example"), [], zone.resolver)
    assert (result.result, result.disposition) == ("fail", "reject")


def test_several_from_addresses_pass_when_each_passes(zone: DNSZone) -> None:
    raw = message("a@example.org, b@mail.example.org")
    result = check_dmarc(raw, spf("pass", "example.org"), [], zone.resolver)
    assert result.result == "pass"


def test_a_message_without_from_is_a_permerror(zone: DNSZone) -> None:
    result = check_dmarc(b"Subject: hi\r\n\r\nbody\r\n", NO_SPF, [], zone.resolver)
    assert (result.result, result.disposition, result.from_domain) == ("permerror", "none", "")
    assert zone.server.queries == []


@pytest.mark.parametrize(
    ("from_fields", "domains"),
    [
        (["Alice <alice@Example.ORG>"], ["example.org"]),
        (['"bob@evil.test" <alice@example.org>'], ["example.org"]),
        (["a@x.test, b@y.test, c@x.test"], ["x.test", "y.test"]),
        (["a@x.test", "b@y.test"], ["x.test", "y.test"]),
        (["Jörg <j@bücher.example>"], ["xn--bcher-kva.example"]),  # RFC 7489 §6.6.1: A-label
        (["undisclosed-recipients:;"], []),
        (["a@[192.0.2.1]"], []),
        ([], []),
        (["Alice\r\n <alice@example.org>"], ["example.org"]),  # folded over two lines
        (["alice@example.org)<bob@example.net>"], ["example.org"]),  # CVE-2023-27043 shape
        (["a@x.test (really <b@y.test>)"], ["x.test"]),  # an address in a comment is not one
    ],
)
def test_it_finds_the_author_domains(from_fields: list[str], domains: list[str]) -> None:
    assert author_domains(message(*from_fields)) == domains


def parser_domains(value: str) -> list[str]:
    """What the email package's RFC 5322 parser finds: the reference for the fast path
    (nothing, where the parser itself fails)."""
    try:
        parsed = AddressHeader.value_parser(value)
        return [m.domain or "" for a in parsed.addresses for m in a.all_mailboxes]
    except PARSER_FAILURES:
        return []


@pytest.mark.parametrize(
    "value",
    [
        "bench@sender.test",
        "Alice <alice@Example.ORG>",
        '"Smith, Bob" <bob@x.test>',
        '"bob@evil.test" <alice@example.org>',
        "<x@y.test>",
        "A  B\t<a.b+tag@mail.x-y.test>",
        "o'neil@x.test",
        '"" <a@x.test>',
    ],
)
def test_the_fast_path_for_plain_from_values_agrees_with_the_parser(value: str) -> None:
    assert SIMPLE_FROM.fullmatch(value)
    assert from_domains(value) == parser_domains(value)


def test_random_from_values_get_the_parsers_domains() -> None:
    """Plain From values with random pieces that matter to RFC 5322 spliced in (quotes,
    brackets, commas, comments, dots, backslashes, colons): whatever the fast path
    takes, it must read as the parser does, and the rest goes to the parser."""
    specials = ['"', "<", ">", "@", ",", "(", ")", ".", "\\", " ", "\t", ":", ";", "[", "]"]
    words = ["bob", "Bob Smith", '"Smith, Bob"', "a.b", "x.test", "mail.x-y.test", "o'n"]
    rng = random.Random(7489)
    taken = 0
    for _ in range(20000):
        value = list(f"{rng.choice(words)} <{rng.choice(words)}@{rng.choice(words)}>")
        if rng.random() < 0.3:
            value = value[value.index("<") + 1 : -1]  # a bare addr-spec
        for _ in range(rng.randint(0, 2)):
            value.insert(rng.randint(0, len(value)), rng.choice(specials))
        text = "".join(value)
        if SIMPLE_FROM.fullmatch(text.strip(" \t")):
            taken += 1
        assert from_domains(text) == parser_domains(text), text
    assert taken > 2000  # the generator does reach the fast path


@pytest.mark.parametrize("value", ["<", "a:,;.: ", ' .;"x.test)a<>  b'])
def test_a_from_value_the_parser_chokes_on_has_no_author_domain(value: str) -> None:
    """The email package's parser raises IndexError, AttributeError or TypeError on
    these (Python 3.11): no author domain, so DMARC says permerror, not a crash."""
    assert author_domains(f"From: {value}\r\n\r\nbody\r\n".encode()) == []


def test_a_from_line_in_the_body_is_not_an_author() -> None:
    raw = b"From: a@x.test\r\nSubject: hi\r\n\r\nFrom: b@y.test\r\n"
    assert author_domains(raw) == ["x.test"]


@pytest.mark.parametrize(
    ("domain", "organizational"),
    [
        ("example.org", "example.org"),
        ("a.b.example.org", "example.org"),
        ("mail.example.co.uk", "example.co.uk"),
        ("co.uk", "co.uk"),
        ("Mail.Example.COM.", "example.com"),
    ],
)
def test_it_finds_the_organizational_domain(domain: str, organizational: str) -> None:
    assert organizational_domain(domain) == organizational


@pytest.mark.parametrize(
    ("text", "record"),
    [
        ("v=DMARC1; p=reject", DMARCRecord(p="reject", sp="reject")),
        ("v=DMARC1;p=Quarantine;sp=none", DMARCRecord(p="quarantine", sp="none")),
        (
            "v=DMARC1; p=none; adkim=s; aspf=s; pct=20; rua=mailto:a@x.test,mailto:b@x.test",
            DMARCRecord("none", "none", "s", "s", 20, ("mailto:a@x.test", "mailto:b@x.test")),
        ),
        ("v=DMARC1; p=reject; adkim=x; pct=200; future=1", DMARCRecord(p="reject", sp="reject")),
        (
            "v=DMARC1; p=bogus; rua=mailto:a@x.test",
            DMARCRecord("none", "none", rua=("mailto:a@x.test",)),
        ),
    ],
)
def test_it_parses_policy_records(text: str, record: DMARCRecord) -> None:
    assert parse_record(text) == record


@pytest.mark.parametrize(
    "text", ["v=DMARC1", "v=DMARC1; p=bogus", "v=DMARC1; p=none; sp=bogus", "p=reject; v=DMARC1"]
)
def test_it_refuses_records_without_a_usable_policy(text: str) -> None:
    with pytest.raises(ValueError):
        parse_record(text)
