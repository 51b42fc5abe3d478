"""`manage.py dns records DOMAIN`: MX, DKIM, our MTA-STS record (RFC 8461 §3.1) and the
TLS reporting record (RFC 8460 §3) an admin publishes for a domain."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.accounts import services as accounts
from apps.relay import keys, mtasts, tlsrpt


def records(capsys) -> str:
    call_command("dns", "records", "example.org")
    return capsys.readouterr().out


def sts_id(out: str) -> str | None:
    match = re.search(r'^_mta-sts\.example\.org\. IN TXT "(.*)"$', out, re.M)
    assert match, out
    return mtasts.published_id([match.group(1)])


def test_it_prints_every_record_to_publish(db, capsys, settings):
    settings.MAILHOST_HOSTNAME = "mx.example.net"
    accounts.create_domain("example.org")
    out = records(capsys)
    assert "example.org. IN MX 10 mx.example.net." in out
    assert "mta-sts.example.org. IN CNAME mx.example.net." in out
    for record in keys.dns_records("example.org"):
        assert f"{record.selector}._domainkey.example.org. IN TXT (" in out
    assert sts_id(out)
    line = re.search(r'^_smtp\._tls\.example\.org\. IN TXT "(.*)"$', out, re.M)
    assert line and tlsrpt.published_rua([line.group(1)]) == ["postmaster@example.org"]


def test_the_mta_sts_id_changes_when_the_policy_does(db, capsys, settings):
    accounts.create_domain("example.org")
    before = sts_id(records(capsys))
    assert sts_id(records(capsys)) == before
    settings.MTA_STS_MODE = "enforce"
    assert sts_id(records(capsys)) != before  # RFC 8461 §3.1: peers fetch it again


def test_it_refuses_a_domain_that_is_not_ours(db):
    with pytest.raises(CommandError):
        call_command("dns", "records", "unknown.test")
