"""The Authentication-Results header (RFC 8601) and check_message end to end over real DNS."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from apps.mailauth.dkim import DKIMResult, generate_ed25519_key, sign, verify
from apps.mailauth.dmarc import DMARCRecord, DMARCResult
from apps.mailauth.results import (
    AuthVerdict,
    authentication_results,
    check_message,
    remove_forged_results,
)
from apps.mailauth.spf import SPFResult
from tests.dnsserver import DNSZone

SPF_PASS = SPFResult(
    "pass", "", "example.org", "mailfrom", "alice@example.org", "client.test", "192.0.2.10", ""
)
DKIM_PASS = DKIMResult("pass", "example.org", "ed", "ed25519-sha256", "@example.org", "abc/d+ef")
DMARC_PASS = DMARCResult(
    "pass", "none", "example.org", "example.org", DMARCRecord("reject", "reject"), "reject", True
)

MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: bob@example.net\r\n"
    b"Subject: Lunch\r\n"
    b"Message-ID: <lunch@example.org>\r\n"
    b"\r\n"
    b"Noon?\r\n"
)


def test_it_writes_one_result_per_line() -> None:
    header = authentication_results("mx.test", SPF_PASS, [DKIM_PASS], DMARC_PASS)
    assert header == (
        "Authentication-Results: mx.test;\r\n"
        "\tspf=pass smtp.mailfrom=alice@example.org;\r\n"
        "\tdkim=pass header.d=example.org header.i=@example.org header.s=ed\r\n"
        '\t  header.a=ed25519-sha256 header.b="abc/d+ef";\r\n'
        "\tdmarc=pass (p=reject dis=none) header.from=example.org\r\n"
    )


def test_it_says_dkim_none_for_an_unsigned_message() -> None:
    header = authentication_results("mx.test", SPF_PASS, [], DMARC_PASS)
    assert "\tdkim=none;\r\n" in header


def test_it_gives_the_reason_a_signature_failed() -> None:
    failed = DKIMResult(
        "fail", "example.org", "s", "rsa-sha256", "@example.org", "x", "body hash mismatch"
    )
    header = authentication_results("mx.test", SPF_PASS, [failed], DMARC_PASS)
    assert '\tdkim=fail reason="body hash mismatch" header.d=example.org' in header


def test_it_names_the_helo_identity_for_a_bounce() -> None:
    helo = SPFResult(
        "none", "", "client.test", "helo", "postmaster@client.test", "client.test", "192.0.2.10", ""
    )
    header = authentication_results("mx.test", helo, [], DMARC_PASS)
    assert "\tspf=none smtp.helo=client.test;\r\n" in header


def test_it_shows_the_policy_and_disposition_of_a_dmarc_failure() -> None:
    failed = DMARCResult(
        "fail",
        "quarantine",
        "example.org",
        "example.org",
        DMARCRecord("quarantine", "quarantine"),
        "quarantine",
    )
    header = authentication_results("mx.test", SPF_PASS, [], failed)
    assert header.endswith("\tdmarc=fail (p=quarantine dis=quarantine) header.from=example.org\r\n")


def test_it_explains_a_dmarc_result_without_policy() -> None:
    missing = DMARCResult("permerror", reason="no RFC5322.From domain")
    header = authentication_results("mx.test", SPF_PASS, [], missing)
    assert header.endswith("\tdmarc=permerror (no RFC5322.From domain)\r\n")


def test_values_from_the_client_cannot_break_the_header() -> None:
    sneaky = SPFResult(
        "fail", "", "x.test", "mailfrom", 'a"b\r\nX-Evil: 1@x.test', "h", "192.0.2.1", ""
    )
    header = authentication_results("mx.test", sneaky, [], DMARC_PASS)
    assert "\r\nX-Evil" not in header
    assert 'smtp.mailfrom="a\\"b X-Evil: 1@x.test";' in header


def test_the_header_parses_back_as_one_field() -> None:
    header = authentication_results("mx.test", SPF_PASS, [DKIM_PASS, DKIM_PASS], DMARC_PASS)
    parsed = message_from_bytes(header.encode() + MESSAGE, policy=policy.default)
    unfolded = " ".join(parsed["Authentication-Results"].split())
    assert unfolded.startswith("mx.test; spf=pass smtp.mailfrom=alice@example.org; dkim=pass")
    assert unfolded.endswith("; dmarc=pass (p=reject dis=none) header.from=example.org")
    assert all(len(line) <= 78 for line in header.split("\r\n"))


@pytest.fixture
def example_org(dns_zone: DNSZone) -> tuple[DNSZone, str]:
    """example.org with SPF, an Ed25519 DKIM key and p=reject; returns the private key."""
    private_pem, record = generate_ed25519_key()
    dns_zone.server.add_txt("example.org", "v=spf1 ip4:192.0.2.0/24 -all")
    dns_zone.server.add_txt("ed._domainkey.example.org", record)
    dns_zone.server.add_txt("_dmarc.example.org", "v=DMARC1; p=reject")
    return dns_zone, private_pem


def check(zone: DNSZone, raw: bytes, ip: str, mail_from: str = "alice@example.org") -> AuthVerdict:
    return check_message(
        raw,
        ip=ip,
        helo="client.test",
        mail_from=mail_from,
        resolver=zone.resolver,
        authserv_id="mx.test",
    )


def test_a_signed_message_from_an_allowed_host_passes_everything(
    example_org: tuple[DNSZone, str],
) -> None:
    zone, private_pem = example_org
    raw = sign(MESSAGE, domain="example.org", selector="ed", private_key_pem=private_pem) + MESSAGE
    verdict = check(zone, raw, "192.0.2.10")
    assert verdict.spf.result == "pass"
    assert [r.result for r in verdict.dkim] == ["pass"]
    assert (verdict.dmarc.result, verdict.dmarc.disposition) == ("pass", "none")
    assert verdict.headers.startswith(
        b"Authentication-Results: mx.test;\r\n"
        b"\tspf=pass smtp.mailfrom=alice@example.org;\r\n"
        b"\tdkim=pass header.d=example.org header.i=@example.org header.s=ed\r\n"
    )
    assert b"\tdmarc=pass (p=reject dis=none) header.from=example.org\r\n" in verdict.headers
    assert b"Received-SPF: Pass (mx.test: domain of example.org designates" in verdict.headers


def test_the_recorded_headers_keep_the_signature_valid(example_org: tuple[DNSZone, str]) -> None:
    zone, private_pem = example_org
    raw = sign(MESSAGE, domain="example.org", selector="ed", private_key_pem=private_pem) + MESSAGE
    stored = check(zone, raw, "192.0.2.10").headers + raw
    assert [r.result for r in verify(stored, zone.resolver)] == ["pass"]
    assert message_from_bytes(stored, policy=policy.default)["Received-SPF"].startswith("Pass")


def test_a_spoofed_message_gets_its_domains_reject_policy(example_org: tuple[DNSZone, str]) -> None:
    zone, _ = example_org
    verdict = check(zone, MESSAGE, "203.0.113.66")
    assert (verdict.spf.result, verdict.dkim) == ("fail", [])
    assert (verdict.dmarc.result, verdict.dmarc.disposition) == ("fail", "reject")
    assert b"\tdkim=none;\r\n" in verdict.headers
    assert b"\tdmarc=fail (p=reject dis=reject) header.from=example.org\r\n" in verdict.headers


def test_a_bounce_is_checked_against_the_helo_name(example_org: tuple[DNSZone, str]) -> None:
    zone, _ = example_org
    zone.server.add_txt("client.test", "v=spf1 ip4:192.0.2.10 -all")
    verdict = check(zone, MESSAGE, "192.0.2.10", mail_from="")
    assert (verdict.spf.result, verdict.spf.identity) == ("pass", "helo")
    assert b"\tspf=pass smtp.helo=client.test;\r\n" in verdict.headers


FORGED = (
    b"Authentication-Results: mx.test; dkim=pass\r\n"
    b"Authentication-Results: (made up) MX.TEST;\r\n"
    b"\tspf=pass\r\n"
    b"Authentication-Results:\r\n mx.test; dmarc=pass\r\n"
    b"Authentication-Results: upstream.example; spf=fail\r\n"
)


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_it_removes_results_that_claim_our_name(newline: bytes) -> None:
    raw = (FORGED + MESSAGE).replace(b"\r\n", newline)
    expected = b"Authentication-Results: upstream.example; spf=fail\r\n" + MESSAGE
    assert remove_forged_results(raw, "mx.test") == expected.replace(b"\r\n", newline)


def test_it_leaves_the_body_alone_when_removing_results() -> None:
    body_line = b"Authentication-Results: mx.test; in the body\r\n"
    raw = MESSAGE + body_line
    assert remove_forged_results(raw, "mx.test") == raw
