"""The DNS adapter against the test DNS server: answers, the three errors, config parsing."""

from __future__ import annotations

import asyncio

import pytest

from apps.mailauth.dns import (
    AsyncResolver,
    NoRecords,
    NXDomain,
    TempError,
    parse_nameservers,
    resolver_from_settings,
)
from tests.dnsserver import DNSZone

ZONE = """
example.org.            TXT   "v=spf1 -all"
example.org.            MX    20 backup.example.org.
example.org.            MX    10 mx.example.org.
mx.example.org.         A     192.0.2.25
mx.example.org.         AAAA  2001:db8::25
www.example.org.        CNAME mx.example.org.
25.2.0.192.in-addr.arpa. PTR  mx.example.org.
5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. PTR mx.example.org.
nomail.example.net.     MX    0 .
sel._domainkey.example.org. TXT "v=DKIM1; p=abc"
"""


@pytest.fixture
def zone(dns_zone: DNSZone) -> DNSZone:
    dns_zone.server.add(ZONE)
    return dns_zone


def test_it_answers_each_record_type(zone: DNSZone) -> None:
    resolver = zone.resolver
    assert resolver.txt("example.org") == ["v=spf1 -all"]
    assert resolver.mx("example.org") == [(10, "mx.example.org"), (20, "backup.example.org")]
    assert resolver.a("mx.example.org") == ["192.0.2.25"]
    assert resolver.aaaa("mx.example.org") == ["2001:db8::25"]
    assert resolver.ptr("192.0.2.25") == ["mx.example.org"]
    assert resolver.ptr("2001:db8::25") == ["mx.example.org"]


def test_it_follows_cnames(zone: DNSZone) -> None:
    assert zone.resolver.a("www.example.org") == ["192.0.2.25"]


def test_it_reports_a_null_mx_as_a_dot(zone: DNSZone) -> None:
    assert zone.resolver.mx("nomail.example.net") == [(0, ".")]


def test_it_joins_the_strings_of_a_long_txt_record_fetched_over_tcp(zone: DNSZone) -> None:
    value = "v=DKIM1; k=rsa; p=" + "A" * 1200  # several strings, more than a UDP answer holds
    zone.server.add_txt("long._domainkey.example.org", value)
    assert zone.resolver.txt("long._domainkey.example.org") == [value]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("missing.example.org", NXDomain),
        ("mx.example.org", NoRecords),
        ("_domainkey.example.org", NoRecords),  # exists: there are names below it
        ("a..example.org", NXDomain),
        ("x" * 64 + ".example.org", NXDomain),
    ],
)
def test_it_maps_missing_answers_to_errors(zone: DNSZone, name: str, error: type) -> None:
    with pytest.raises(error):
        zone.resolver.txt(name)


def test_it_maps_servfail_to_temperror(zone: DNSZone) -> None:
    zone.server.servfail("mx.example.org")
    with pytest.raises(TempError):
        zone.resolver.a("mx.example.org")


def test_it_sees_records_changed_while_running(zone: DNSZone) -> None:
    zone.server.remove("mx.example.org", "A")
    zone.server.add("mx.example.org. A 192.0.2.26")
    assert zone.resolver.a("mx.example.org") == ["192.0.2.26"]


def test_the_async_resolver_gives_the_same_answers(zone: DNSZone) -> None:
    resolver = AsyncResolver(zone.server.nameservers, timeout=2.0)

    async def lookups() -> tuple[list[tuple[int, str]], list[str]]:
        return await resolver.mx("example.org"), await resolver.txt("example.org")

    assert asyncio.run(lookups()) == (
        [(10, "mx.example.org"), (20, "backup.example.org")],
        ["v=spf1 -all"],
    )


def test_the_async_resolver_raises_the_same_errors(zone: DNSZone) -> None:
    resolver = AsyncResolver(zone.server.nameservers, timeout=2.0)
    with pytest.raises(NXDomain):
        asyncio.run(resolver.a("missing.example.org"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", [("127.0.0.1", 53)]),
        ("127.0.0.1:5353, ::1:53", [("127.0.0.1", 5353), ("::1", 53)]),
        ("[::1]", [("::1", 53)]),
        ("[2001:db8::1]:5300", [("2001:db8::1", 5300)]),
        ("", None),
        (None, None),
    ],
)
def test_it_parses_the_nameservers_setting(
    text: str | None, expected: list[tuple[str, int]] | None
) -> None:
    assert parse_nameservers(text) == expected


@pytest.mark.parametrize(
    "text", ["localhost", "127.0.0.1:0", "127.0.0.1:dns", "[::1", "1.2.3.4:70000"]
)
def test_it_refuses_a_bad_nameservers_setting(text: str) -> None:
    with pytest.raises(ValueError, match="bad DNS server"):
        parse_nameservers(text)


def test_a_resolver_from_settings_asks_the_configured_server(zone: DNSZone) -> None:
    host, port = zone.server.nameservers[0]
    resolver = resolver_from_settings(f"{host}:{port}", timeout=2.0)
    assert resolver.a("mx.example.org") == ["192.0.2.25"]


def test_the_shared_resolver_caches_a_negative_answer_only_as_long_as_its_soa_says(
    zone: DNSZone,
) -> None:
    # RFC 2308 §5: the test server's SOA says 0 seconds, so a domain published a moment
    # after a lookup failed is found at once (a real zone would say minutes).
    host, port = zone.server.nameservers[0]
    resolver = resolver_from_settings(f"{host}:{port}", timeout=2.0)
    with pytest.raises(NXDomain):
        resolver.mx("late.example.net")
    zone.server.add("late.example.net. MX 10 mx.example.org.")
    assert resolver.mx("late.example.net") == [(10, "mx.example.org")]
