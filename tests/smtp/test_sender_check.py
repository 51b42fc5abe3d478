"""MAIL FROM on submission: the quick check (the user's own address, one plain query; on
SQLite run on the event loop through its read-only reader) agrees with the full one
wherever it gives a verdict, and the hourly rate counts every MAIL FROM, whichever check
answered it."""

from __future__ import annotations

import smtplib

import pytest

from apps.accounts import services as accounts
from apps.accounts.models import Domain, User
from apps.mailstore import plainsql
from apps.smtp import policy
from mailhost.sqlite import loopreader
from tests.mailclient import client_tls

ADDRESSES = [
    "alice@example.org",  # her own address
    "ALICE@Example.org",
    "alice+lists@example.org",  # RFC 5233 sub-address
    "sales@example.org",  # an alias of hers
    "bob@example.org",  # someone else's
    "carol@example.org",  # disabled below
    "carol@quiet.test",  # at a disabled domain
    "friend@remote.test",
    "",  # the null sender
    "no-domain",
]


@pytest.fixture
def senders(live_personas):
    accounts.create_alias("sales@example.org", ["alice@example.org"])
    User.objects.filter(pk=live_personas["carol"].id).update(is_active=False)
    Domain.objects.create(name="quiet.test", is_active=False)
    return live_personas


def readers() -> list[plainsql.FetchOne]:
    found: list[plainsql.FetchOne] = [plainsql.fetch_one]
    if (reader := loopreader.for_this_thread()) is not None:
        found.append(reader.fetch_one)
    return found


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_quick_sender_check_agrees_with_the_full_one_or_gives_no_verdict(senders, address):
    alice = senders["alice"].id
    full = policy.check_sender(alice, address)
    for fetch_one in readers():
        quick = policy.check_sender_quickly(alice, address, fetch_one)
        assert quick is None or quick == full, (address, fetch_one)
    # Her own address, the usual envelope sender, never needs a database thread while
    # the rate is counted in memory (one process, no Redis).
    if address.lower() == "alice@example.org" and policy.rate_counted_in_memory():
        assert policy.check_sender_quickly(alice, address, readers()[-1]) == full


def test_the_hourly_rate_counts_senders_checked_either_way(mailserver, senders, settings):
    """Her own address is answered on the loop, a sub-address and an alias on a database
    thread; all take from the same hourly allowance, and past it MAIL gets 450 4.7.1
    (RFC 3463 §3.8: a temporary security or policy status)."""
    settings.SUBMISSION_RATE_PER_HOUR = 3
    alice = senders["alice"]
    with smtplib.SMTP_SSL(
        "127.0.0.1", mailserver.port("submissions"), timeout=30, context=client_tls()
    ) as client:
        client.login(alice.address, alice.password)
        codes = []
        for sender in [alice.address, "alice+lists@example.org", "sales@example.org"] * 2:
            codes.append(client.mail(sender)[0])
            client.rset()
    assert codes == [250, 250, 250, 450, 450, 450]
