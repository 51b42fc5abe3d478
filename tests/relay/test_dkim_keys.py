"""DKIM keys for our domains: made at creation, published, rotated, used to sign."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.accounts import services as accounts
from apps.mailauth.dkim import verify
from apps.relay import keys
from apps.relay.models import DKIMKey

MESSAGE = (
    b"From: Alice <alice@example.org>\r\nTo: friend@remote.test\r\nSubject: Signed\r\n"
    b"Date: Mon, 30 Nov 2026 12:00:00 +0000\r\nMessage-ID: <signed@example.org>\r\n"
    b"\r\nHello there.\r\n"
)


def publish(zone, domain: str) -> None:
    for record in keys.dns_records(domain):
        zone.add_txt(record.name, record.value)


def test_a_new_domain_gets_an_rsa_and_an_ed25519_key(db):
    domain = accounts.create_domain("fresh.test")
    found = {k.algorithm: k for k in DKIMKey.objects.filter(domain=domain)}
    assert set(found) == {"rsa-sha256", "ed25519-sha256"}
    assert all(k.active for k in found.values())
    assert found["rsa-sha256"].selector.endswith("-rsa")
    assert found["rsa-sha256"].public_record.startswith("v=DKIM1; k=rsa; p=")
    assert found["ed25519-sha256"].public_record.startswith("v=DKIM1; k=ed25519; p=")


def test_outgoing_mail_is_signed_with_both_keys_and_verifies(db, zone):
    accounts.create_domain("example.org")
    publish(zone, "example.org")
    signed = keys.sign(MESSAGE, "example.org")
    results = verify(signed, zone.resolver)
    assert sorted((r.algorithm, r.result) for r in results) == [
        ("ed25519-sha256", "pass"),
        ("rsa-sha256", "pass"),
    ]


def test_mail_from_a_domain_without_keys_goes_unsigned(db):
    assert keys.sign(MESSAGE, "elsewhere.test") == MESSAGE


@pytest.mark.parametrize(
    ("head", "domain"),
    [
        (b"From: Alice <alice@Example.ORG>\r\n", "example.org"),
        (b"From: a@one.test, b@two.test\r\n", ""),  # several authors: nobody to sign for
        (b"Subject: no author\r\n", ""),
        (b"From:\r\n  folded@example.org\r\n", "example.org"),
    ],
)
def test_the_signing_domain_is_the_authors(head, domain):
    assert keys.author_domain(head + b"\r\nbody\r\n") == domain


def test_rotation_signs_with_new_selectors_and_keeps_the_old_ones_published(db, zone):
    accounts.create_domain("example.org")
    old = {r.selector for r in keys.dns_records("example.org")}
    publish(zone, "example.org")
    before = keys.sign(MESSAGE, "example.org")
    new = {k.selector for k in keys.rotate("example.org")}
    assert old.isdisjoint(new)
    records = {r.selector: r.active for r in keys.dns_records("example.org")}
    assert records == {**dict.fromkeys(old, False), **dict.fromkeys(new, True)}
    zone.clear()
    publish(zone, "example.org")
    after = keys.sign(MESSAGE, "example.org")
    assert {r.selector for r in verify(after, zone.resolver)} == new
    assert all(r.result == "pass" for r in verify(before, zone.resolver))  # still verifies


def test_only_a_retired_key_can_be_removed(db):
    accounts.create_domain("example.org")
    [active, *_] = keys.dns_records("example.org")
    with pytest.raises(keys.KeyChangeError):
        keys.remove("example.org", active.selector)
    keys.rotate("example.org")
    keys.remove("example.org", active.selector)
    assert active.selector not in {r.selector for r in keys.dns_records("example.org")}


def test_the_admin_sees_the_records_to_publish(db, capsys):
    accounts.create_domain("example.org")
    call_command("dkim", "records", "example.org")
    out = capsys.readouterr().out
    for record in keys.dns_records("example.org"):
        assert f"{record.name}. IN TXT (" in out
    rsa = next(r for r in keys.dns_records("example.org") if r.algorithm == "rsa-sha256")
    chunks = rsa.zone_line().split('"')[1::2]
    assert "".join(chunks) == rsa.value and max(len(c) for c in chunks) <= 255


def test_the_dkim_command_explains_what_it_cannot_do(db):
    with pytest.raises(CommandError, match="no domain"):
        call_command("dkim", "rotate", "unknown.test")
    accounts.create_domain("example.org")
    with pytest.raises(CommandError, match="rotate before removing"):
        call_command("dkim", "remove", "example.org", keys.dns_records("example.org")[0].selector)
