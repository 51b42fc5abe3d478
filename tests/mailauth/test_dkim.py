"""DKIM signing and verifying (RFC 6376, RFC 8463) with keys served by the test DNS server."""

from __future__ import annotations

import base64

import pytest

from apps.mailauth.dkim import (
    DKIMSignError,
    generate_ed25519_key,
    generate_rsa_key,
    sign,
    verify,
)
from tests.dnsserver import DNSZone

MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.net>\r\n"
    b"Subject: Lunch\r\n"
    b"Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
    b"Message-ID: <lunch@example.org>\r\n"
    b"\r\n"
    b"Noon at the usual place?\r\n"
)


Keys = dict[str, tuple[str, str]]  # algorithm -> (private key PEM, DNS TXT value)


@pytest.fixture(scope="module")
def keys() -> Keys:
    """One key pair per algorithm, made once: RSA key generation takes a moment."""
    return {"rsa-sha256": generate_rsa_key(), "ed25519-sha256": generate_ed25519_key()}


@pytest.fixture
def zone(dns_zone: DNSZone, keys: Keys) -> DNSZone:
    dns_zone.server.add_txt("rsa._domainkey.example.org", keys["rsa-sha256"][1])
    dns_zone.server.add_txt("ed._domainkey.example.org", keys["ed25519-sha256"][1])
    return dns_zone


SELECTORS = {"rsa-sha256": "rsa", "ed25519-sha256": "ed"}
ALGORITHMS = list(SELECTORS)


def signed(
    keys: Keys,
    algorithm: str,
    message: bytes = MESSAGE,
    canonicalization: tuple[str, str] = ("relaxed", "relaxed"),
    selector: str | None = None,
) -> bytes:
    header = sign(
        message,
        domain="example.org",
        selector=selector or SELECTORS[algorithm],
        private_key_pem=keys[algorithm][0],
        canonicalization=canonicalization,
    )
    return header + message


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_signed_message_verifies(zone: DNSZone, keys: Keys, algorithm: str) -> None:
    [result] = verify(signed(keys, algorithm), zone.resolver)
    assert result.result == "pass"
    assert (result.domain, result.selector, result.algorithm) == (
        "example.org",
        SELECTORS[algorithm],
        algorithm,
    )
    assert result.identity == "@example.org"
    assert len(result.header_b) == 8


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    "canonicalization",
    [("relaxed", "relaxed"), ("relaxed", "simple"), ("simple", "relaxed"), ("simple", "simple")],
)
def test_each_canonicalization_verifies(
    zone: DNSZone, keys: Keys, algorithm: str, canonicalization: tuple[str, str]
) -> None:
    message = signed(keys, algorithm, canonicalization=canonicalization)
    assert b"c=" + "/".join(canonicalization).encode() in message
    assert [r.result for r in verify(message, zone.resolver)] == ["pass"]


@pytest.mark.parametrize(
    ("canonicalization", "expected"),
    [(("relaxed", "relaxed"), "pass"), (("simple", "simple"), "fail")],
)
def test_only_relaxed_canonicalization_survives_reformatting(
    zone: DNSZone, keys: Keys, canonicalization: tuple[str, str], expected: str
) -> None:
    # What relays do in transit: re-space a header, add trailing blanks to body lines.
    message = signed(keys, "ed25519-sha256", canonicalization=canonicalization)
    message = message.replace(b"Subject: Lunch", b"Subject:  Lunch")
    message = message.replace(b"place?\r\n", b"place?  \r\n")
    assert [r.result for r in verify(message, zone.resolver)] == [expected]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_tampered_body_fails(zone: DNSZone, keys: Keys, algorithm: str) -> None:
    message = signed(keys, algorithm).replace(b"Noon", b"Midnight")
    [result] = verify(message, zone.resolver)
    assert (result.result, result.reason) == ("fail", "body hash mismatch")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_tampered_signed_header_fails(zone: DNSZone, keys: Keys, algorithm: str) -> None:
    message = signed(keys, algorithm).replace(b"Subject: Lunch", b"Subject: Dinner")
    [result] = verify(message, zone.resolver)
    assert (result.result, result.reason) == ("fail", "signature does not verify")


def test_a_signature_under_the_wrong_key_fails(zone: DNSZone, keys: Keys) -> None:
    zone.server.add_txt("other._domainkey.example.org", generate_ed25519_key()[1])
    message = signed(keys, "ed25519-sha256", selector="other")
    assert [r.result for r in verify(message, zone.resolver)] == ["fail"]


def test_a_missing_key_is_a_permerror(zone: DNSZone, keys: Keys) -> None:
    [result] = verify(signed(keys, "rsa-sha256", selector="gone"), zone.resolver)
    assert (result.result, result.reason) == ("permerror", "no key for signature")


def test_a_revoked_key_is_a_permerror(zone: DNSZone, keys: Keys) -> None:
    zone.server.add_txt("revoked._domainkey.example.org", "v=DKIM1; k=rsa; p=")  # §3.6.1
    [result] = verify(signed(keys, "rsa-sha256", selector="revoked"), zone.resolver)
    assert (result.result, result.reason) == ("permerror", "unusable key record")


def test_a_key_for_another_service_is_a_permerror(zone: DNSZone, keys: Keys) -> None:
    zone.server.add_txt("ssh._domainkey.example.org", keys["rsa-sha256"][1] + "; s=ssh")
    [result] = verify(signed(keys, "rsa-sha256", selector="ssh"), zone.resolver)
    assert result.result == "permerror"


def test_a_failing_key_lookup_is_a_temperror(zone: DNSZone, keys: Keys) -> None:
    zone.server.servfail("broken._domainkey.example.org")
    [result] = verify(signed(keys, "rsa-sha256", selector="broken"), zone.resolver)
    assert (result.result, result.reason) == ("temperror", "key lookup failed")


def test_a_signature_with_a_missing_tag_is_neutral(zone: DNSZone) -> None:
    message = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=rsa; b=abcd\r\n" + MESSAGE
    [result] = verify(message, zone.resolver)
    assert (result.result, result.domain, result.selector) == ("neutral", "example.org", "rsa")


def test_an_rsa_sha1_signature_is_refused_without_a_lookup(zone: DNSZone) -> None:
    # RFC 8301 §3.1: verifiers must not consider SHA-1 signatures valid.
    tags = b"v=1; a=rsa-sha1; d=example.org; s=rsa; h=from; bh=AAAA; b=AAAA"
    [result] = verify(b"DKIM-Signature: " + tags + b"\r\n" + MESSAGE, zone.resolver)
    assert (result.result, result.algorithm) == ("permerror", "rsa-sha1")
    assert zone.server.queries == []


def test_every_signature_gets_its_own_result_topmost_first(zone: DNSZone, keys: Keys) -> None:
    message = signed(keys, "rsa-sha256")
    message = signed(keys, "ed25519-sha256", message=message)
    message = signed(keys, "ed25519-sha256", message=message, selector="gone")
    results = verify(message, zone.resolver)
    assert [(r.selector, r.result) for r in results] == [
        ("gone", "permerror"),
        ("ed", "pass"),
        ("rsa", "pass"),
    ]


def test_an_unsigned_message_has_no_results(zone: DNSZone) -> None:
    assert verify(MESSAGE, zone.resolver) == []
    assert zone.server.queries == []


def test_a_field_name_in_any_case_is_found(zone: DNSZone, keys: Keys) -> None:
    """Field names are case-insensitive (RFC 5322 §1.2.2): the quick look for a signature
    before dkimpy parses the message must not miss a lower-case one."""
    message = signed(keys, "ed25519-sha256").replace(b"DKIM-Signature:", b"dkim-signature:", 1)
    assert [r.result for r in verify(message, zone.resolver)] == ["pass"]


def test_a_message_with_lf_line_endings_verifies(zone: DNSZone, keys: Keys) -> None:
    message = signed(keys, "ed25519-sha256", message=MESSAGE.replace(b"\r\n", b"\n"))
    assert [r.result for r in verify(message, zone.resolver)] == ["pass"]


def test_the_rsa_dns_record_carries_the_public_key(keys: Keys) -> None:
    private_pem, record = keys["rsa-sha256"]
    assert private_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert record.startswith("v=DKIM1; k=rsa; p=MII")  # DER SubjectPublicKeyInfo


def test_the_ed25519_dns_record_carries_the_raw_32_byte_key(keys: Keys) -> None:
    private_pem, record = keys["ed25519-sha256"]
    assert private_pem.startswith("-----BEGIN PRIVATE KEY-----")
    prefix, _, key = record.partition("p=")
    assert prefix == "v=DKIM1; k=ed25519; "
    assert len(base64.b64decode(key)) == 32  # RFC 8463 §4.2


def test_signing_refuses_a_key_that_is_not_pem() -> None:
    with pytest.raises(DKIMSignError):
        sign(MESSAGE, domain="example.org", selector="s", private_key_pem="not a key")


def test_signing_refuses_a_message_without_from(keys: Keys) -> None:
    with pytest.raises(DKIMSignError):
        sign(
            b"Subject: x\r\n\r\nbody\r\n",
            domain="example.org",
            selector="ed",
            private_key_pem=keys["ed25519-sha256"][0],
            headers=["subject"],
        )
