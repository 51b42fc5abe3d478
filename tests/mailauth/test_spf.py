"""SPF checks (RFC 7208) against records served by the test DNS server."""

from __future__ import annotations

import pytest

from apps.mailauth.spf import check_spf
from tests.dnsserver import DNSZone

SENDER = "alice@sender.example"
HELO = "client.example"

SUPPORT = """
web.sender.example.        A    203.0.113.5
sender.example.            MX   10 mx.sender.example.
mx.sender.example.         A    203.0.113.25
mx.sender.example.         AAAA 2001:db8:25::1
_spf.provider.example.     TXT  "v=spf1 ip4:198.51.100.0/24 -all"
nospf.provider.example.    TXT  "google-site-verification=abc"
"""


@pytest.fixture
def zone(dns_zone: DNSZone) -> DNSZone:
    dns_zone.server.add(SUPPORT)
    return dns_zone


def check(zone: DNSZone, record: str | None, ip: str, mail_from: str = SENDER) -> str:
    if record is not None:
        zone.server.add_txt("sender.example", record)
    return check_spf(ip, mail_from, HELO, zone.resolver, receiver="mx.test").result


@pytest.mark.parametrize(
    ("record", "ip", "expected"),
    [
        ("v=spf1 ip4:192.0.2.0/24 -all", "192.0.2.10", "pass"),
        ("v=spf1 ip4:192.0.2.0/24 -all", "198.51.100.1", "fail"),
        ("v=spf1 ip4:192.0.2.0/24 ~all", "198.51.100.1", "softfail"),
        ("v=spf1 ip4:192.0.2.0/24 ?all", "198.51.100.1", "neutral"),
        ("v=spf1 ip4:192.0.2.0/24", "198.51.100.1", "neutral"),  # no match, no all: §4.7
        ("v=spf1 ip6:2001:db8::/32 -all", "2001:db8::25", "pass"),
        ("v=spf1 ip6:2001:db8::/32 -all", "2001:db9::25", "fail"),
        ("v=spf1 ip4:192.0.2.0/24 -all", "::ffff:192.0.2.10", "pass"),  # IPv4-mapped
        ("v=spf1 a:web.sender.example -all", "203.0.113.5", "pass"),
        ("v=spf1 a:web.sender.example -all", "203.0.113.6", "fail"),
        ("v=spf1 a:web.sender.example/24 -all", "203.0.113.6", "pass"),
        ("v=spf1 mx -all", "203.0.113.25", "pass"),
        ("v=spf1 mx -all", "2001:db8:25::1", "pass"),
        ("v=spf1 include:_spf.provider.example -all", "198.51.100.77", "pass"),
        ("v=spf1 include:_spf.provider.example -all", "192.0.2.77", "fail"),
        ("v=spf1 redirect=_spf.provider.example", "198.51.100.77", "pass"),
        ("v=spf1 redirect=_spf.provider.example", "192.0.2.77", "fail"),
        ("v=spf1 -ip4:192.0.2.10 +all", "192.0.2.10", "fail"),
        ("v=spf1 moo -all", "192.0.2.10", "permerror"),  # unknown mechanism
        ("v=spf1 ip4:192.0.2.300 -all", "192.0.2.10", "permerror"),
        ("v=spf1 include:nospf.provider.example -all", "192.0.2.10", "permerror"),  # §5.2
        ("v=spf1 redirect=nospf.provider.example", "192.0.2.10", "permerror"),  # §6.1
    ],
)
def test_it_evaluates_the_senders_record(
    zone: DNSZone, record: str, ip: str, expected: str
) -> None:
    assert check(zone, record, ip) == expected


def test_it_says_none_when_the_domain_publishes_no_spf_record(zone: DNSZone) -> None:
    zone.server.add_txt("sender.example", "some other text record")
    assert check(zone, None, "192.0.2.10") == "none"


def test_it_says_none_when_the_domain_does_not_exist(zone: DNSZone) -> None:
    assert check(zone, None, "192.0.2.10", mail_from="bob@nowhere.example") == "none"


def test_it_gives_permerror_for_two_spf_records(zone: DNSZone) -> None:
    zone.server.add_txt("sender.example", "v=spf1 -all")
    assert check(zone, "v=spf1 +all", "192.0.2.10") == "permerror"  # §4.5


def test_it_gives_permerror_past_ten_dns_lookups(zone: DNSZone) -> None:
    # RFC 7208 §4.6.4: include, a, mx, ptr, exists and redirect count; at most 10.
    for n in range(11):
        zone.server.add_txt(f"part{n}.sender.example", "v=spf1 ?all")
    includes = " ".join(f"include:part{n}.sender.example" for n in range(11))
    assert check(zone, f"v=spf1 {includes} -all", "192.0.2.10") == "permerror"


def test_it_allows_exactly_ten_dns_lookups(zone: DNSZone) -> None:
    for n in range(10):
        zone.server.add_txt(f"part{n}.sender.example", "v=spf1 ?all")
    includes = " ".join(f"include:part{n}.sender.example" for n in range(10))
    assert check(zone, f"v=spf1 {includes} -all", "192.0.2.10") == "fail"


def test_it_gives_permerror_past_two_void_lookups(zone: DNSZone) -> None:
    # RFC 7208 §4.6.4: lookups answering nothing count too, at most two.
    record = "v=spf1 a:gone1.sender.example a:gone2.sender.example a:gone3.sender.example -all"
    assert check(zone, record, "192.0.2.10") == "permerror"


def test_it_gives_temperror_when_the_domains_dns_fails(zone: DNSZone) -> None:
    zone.server.servfail("sender.example")
    assert check(zone, None, "192.0.2.10") == "temperror"


def test_it_gives_temperror_when_an_included_domains_dns_fails(zone: DNSZone) -> None:
    zone.server.servfail("_spf.provider.example")
    assert check(zone, "v=spf1 include:_spf.provider.example -all", "192.0.2.10") == "temperror"


def test_it_matches_a_validated_ptr_name(zone: DNSZone) -> None:
    zone.server.add("10.2.0.192.in-addr.arpa. PTR host.sender.example.")
    zone.server.add("host.sender.example. A 192.0.2.10")
    assert check(zone, "v=spf1 ptr -all", "192.0.2.10") == "pass"


def test_it_checks_the_helo_name_when_mail_from_is_empty(zone: DNSZone) -> None:
    # RFC 7208 §2.4: a bounce has an empty MAIL FROM; postmaster@HELO is checked instead.
    zone.server.add_txt(HELO, "v=spf1 ip4:192.0.2.10 -all")
    result = check_spf("192.0.2.10", "", HELO, zone.resolver, receiver="mx.test")
    assert (result.result, result.identity, result.domain) == ("pass", "helo", HELO)
    assert result.smtp_property == ("smtp.helo", HELO)


def test_it_reports_what_was_checked(zone: DNSZone) -> None:
    zone.server.add_txt("sender.example", "v=spf1 ip4:192.0.2.0/24 -all")
    result = check_spf("192.0.2.10", SENDER, HELO, zone.resolver, receiver="mx.test")
    assert (result.domain, result.identity, result.sender) == ("sender.example", "mailfrom", SENDER)
    assert result.smtp_property == ("smtp.mailfrom", SENDER)


def test_it_renders_a_received_spf_header(zone: DNSZone) -> None:
    zone.server.add_txt("sender.example", "v=spf1 ip4:192.0.2.0/24 -all")
    result = check_spf("192.0.2.10", SENDER, HELO, zone.resolver, receiver="mx.test")
    # RFC 7208 §9.1: result (comment) key=value pairs, identity last.
    assert result.received_spf == (
        "Received-SPF: Pass (mx.test: domain of sender.example designates 192.0.2.10 as"
        ' permitted sender) client-ip=192.0.2.10; envelope-from="alice@sender.example";'
        ' helo=client.example; receiver=mx.test; mechanism="ip4:192.0.2.0/24";'
        " identity=mailfrom"
    )


def test_it_says_none_without_any_identity_to_check(zone: DNSZone) -> None:
    result = check_spf("192.0.2.10", "", "", zone.resolver, receiver="mx.test")
    assert result.result == "none"
    assert zone.server.queries == []


def test_it_refuses_a_client_address_that_is_not_one(zone: DNSZone) -> None:
    with pytest.raises(ValueError):
        check_spf("not-an-ip", SENDER, HELO, zone.resolver)
