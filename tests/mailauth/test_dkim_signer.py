"""The DKIM signer (RFC 6376, RFC 8463), checked by two verifiers that share none of its
signing code: dkimpy, and Mail::DKIM (Debian's libmail-dkim-perl) over real DNS."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from apps.mailauth.dkim import (
    generate_ed25519_key,
    generate_rsa_key,
    sign_with,
    signing_key,
    verify,
)
from tests.dnsserver import DNSZone

PERL_VERIFIER = Path(__file__).with_name("dkim_verify.pl")
# Folded fields, runs of white space and trailing blank lines: what simple and relaxed
# canonicalization (RFC 6376 §3.4) treat differently.
MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.net>,\r\n\tCarol <carol@example.net>\r\n"
    b"Subject:   Lunch   plans \r\n"
    b"Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
    b"Message-ID: <lunch@example.org>\r\n"
    b"\r\n"
    b"Noon at  the usual place? \r\n"
    b".. and bring a friend.\r\n"
    b"\r\n\r\n"
)
CANONICALIZATIONS = [("simple", "simple"), ("relaxed", "relaxed"), ("relaxed", "simple")]


@pytest.fixture(scope="module")
def key_pairs() -> dict[str, tuple[str, str]]:
    return {"rsa-sha256": generate_rsa_key(), "ed25519-sha256": generate_ed25519_key()}


@pytest.fixture
def zone(dns_zone: DNSZone, key_pairs: dict[str, tuple[str, str]]) -> DNSZone:
    for algorithm, (_, record) in key_pairs.items():
        dns_zone.server.add_txt(f"{algorithm[:3]}._domainkey.example.org", record)
    return dns_zone


def signed(key_pairs, algorithms, canonicalization) -> bytes:
    keys = [
        signing_key("example.org", algorithm[:3], key_pairs[algorithm][0])
        for algorithm in algorithms
    ]
    return sign_with(MESSAGE, keys, canonicalization=canonicalization) + MESSAGE


def mail_dkim(message: bytes, zone: DNSZone) -> list[str]:
    host, port = zone.server.nameservers[0]
    done = subprocess.run(
        ["perl", str(PERL_VERIFIER), host, str(port)],
        input=message,
        capture_output=True,
        timeout=60,
        check=True,
    )
    return done.stdout.decode().splitlines()


@pytest.mark.parametrize("canonicalization", CANONICALIZATIONS)
@pytest.mark.parametrize("algorithm", ["rsa-sha256", "ed25519-sha256"])
def test_it_signs_what_dkimpy_verifies(zone, key_pairs, algorithm, canonicalization):
    message = signed(key_pairs, [algorithm], canonicalization)
    [result] = verify(message, zone.resolver)
    assert (result.result, result.algorithm, result.reason) == ("pass", algorithm, "")
    assert f"c={'/'.join(canonicalization)};" in message.decode()


def test_it_signs_once_per_key_and_each_signature_verifies(zone, key_pairs):
    message = signed(key_pairs, ["rsa-sha256", "ed25519-sha256"], ("relaxed", "relaxed"))
    results = verify(message, zone.resolver)
    assert [(r.algorithm, r.result) for r in results] == [
        ("rsa-sha256", "pass"),
        ("ed25519-sha256", "pass"),
    ]


@pytest.mark.parametrize("canonicalization", CANONICALIZATIONS)
def test_it_signs_what_mail_dkim_verifies(zone, key_pairs, canonicalization):
    """Mail::DKIM in Debian 12 (1.20230212) knows RSA only: its Ed25519 support (RFC
    8463) came later. The header hash both algorithms sign is built the same way, so
    this checks the canonicalization and the field layout of Ed25519 signatures too."""
    message = signed(key_pairs, ["rsa-sha256"], canonicalization)
    assert mail_dkim(message, zone) == ["pass rsa-sha256 rsa"]


def test_a_changed_body_fails_in_both_verifiers(zone, key_pairs):
    message = signed(key_pairs, ["rsa-sha256"], ("relaxed", "relaxed"))
    tampered = message.replace(b"Noon", b"Nine")
    [result] = verify(tampered, zone.resolver)
    assert (result.result, result.reason) == ("fail", "body hash mismatch")
    assert mail_dkim(tampered, zone) == ["fail rsa-sha256 rsa"]
