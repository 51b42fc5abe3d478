"""Submission to delivery through the real worker process: the message is found through MX
records on the test's DNS server and handed to the test's receiving server."""

from __future__ import annotations

import smtplib
import statistics
import time
from collections.abc import Sequence

import pytest

from apps.mailauth.dkim import verify
from apps.relay import keys
from tests.conftest import Persona
from tests.mailclient import client_tls, raw_message
from tests.relay.helpers import (
    attached,
    decoded,
    inbox,
    received,
    report_parts,
    rows_in,
    stored_raw,
)


def submit(
    server, sender: Persona, recipients: Sequence[str], raw: bytes | None = None, **options
) -> None:
    raw = raw or raw_message(sender.address, recipients[0])
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.port("submissions"), timeout=30, context=client_tls()
    ) as client:
        client.login(sender.address, sender.password)
        assert client.sendmail(sender.address, list(recipients), raw, **options) == {}


def publish_dkim_keys(zone, domain: str) -> None:
    for record in keys.dns_records(domain):
        zone.add_txt(record.name, record.value)


def test_a_submitted_message_reaches_the_remote_mx_signed_with_rsa_and_ed25519(
    mailsystem, live_personas, zone, sink
):
    alice = live_personas["alice"]
    zone.mx("remote.test")
    publish_dkim_keys(zone, "example.org")
    submit(mailsystem, alice, ["friend@remote.test"])
    [message] = received(sink, 1)
    assert message.recipients == ["friend@remote.test"]
    assert message.mail_from == alice.address
    results = verify(message.data, zone.resolver)
    assert sorted((r.algorithm, r.result, r.domain) for r in results) == [
        ("ed25519-sha256", "pass", "example.org"),
        ("rsa-sha256", "pass", "example.org"),
    ]
    assert rows_in("delivered", 1)


def test_a_temporary_failure_is_retried_and_delivered_once(mailsystem, live_personas, zone, sink):
    zone.mx("remote.test")
    sink.script("friend@remote.test", ["451 4.7.1 greylisted, come back later"])
    submit(mailsystem, live_personas["alice"], ["friend@remote.test"])
    [row] = rows_in("delivered", 1)
    assert row.attempts == 2
    assert len(sink.messages()) == 1


def test_a_permanent_failure_puts_a_dsn_in_the_senders_inbox(mailsystem, live_personas, zone, sink):
    alice = live_personas["alice"]
    zone.mx("remote.test")
    sink.script("ghost@remote.test", ["550 5.1.1 <ghost@remote.test>: no such user"])
    raw = raw_message(alice.address, "ghost@remote.test", subject="Are you there?")
    submit(mailsystem, alice, ["ghost@remote.test"], raw, mail_options=["RET=FULL", "ENVID=q-7"])
    [bounce] = inbox(alice.id, 1)
    assert bounce.subject == "Undelivered Mail Returned to Sender"
    human, [per_message, block], returned = report_parts(stored_raw(bounce))
    assert per_message["Reporting-MTA"].startswith("dns; ")
    assert per_message["Original-Envelope-Id"] == "q-7"
    assert block["Final-Recipient"] == "rfc822; ghost@remote.test"
    assert (block["Action"], block["Status"]) == ("failed", "5.1.1")
    assert block["Diagnostic-Code"] == "smtp; 550 5.1.1 <ghost@remote.test>: no such user"
    assert "no such user" in decoded(human).decode()
    assert returned.get_content_type() == "message/rfc822"
    assert attached(returned)["Subject"] == "Are you there?"
    assert rows_in("failed", 1)


@pytest.mark.parametrize(
    ("domain", "record", "status"),
    [("nullmx.test", "nullmx.test. MX 0 .", "5.1.10"), ("nosuch.test", None, "5.1.2")],
)
def test_a_domain_that_takes_no_mail_bounces_at_once(
    mailsystem, live_personas, zone, sink, domain, record, status
):
    alice = live_personas["alice"]
    if record:
        zone.add(record)
    submit(mailsystem, alice, [f"someone@{domain}"])
    [bounce] = inbox(alice.id, 1)
    _, [_, block], _ = report_parts(stored_raw(bounce))
    assert (block["Action"], block["Status"]) == ("failed", status)
    assert sink.messages() == []
    assert rows_in("failed", 1)[0].attempts == 1


def test_recipients_at_two_domains_get_one_transaction_per_domain(
    mailsystem, live_personas, zone, sink
):
    zone.mx("one.test")
    zone.mx("two.test")
    recipients = ["a@one.test", "b@two.test", "c@one.test", "d@two.test", "e@two.test"]
    submit(mailsystem, live_personas["alice"], recipients)
    got = received(sink, 2)
    assert sorted(sorted(m.recipients) for m in got) == [
        ["a@one.test", "c@one.test"],
        ["b@two.test", "d@two.test", "e@two.test"],
    ]
    assert len(rows_in("delivered", 2)) == 2
    assert len(sink.messages()) == 2


def test_local_and_remote_recipients_of_one_message_each_get_it_once(
    mailsystem, live_personas, zone, sink
):
    alice, bob = live_personas["alice"], live_personas["bob"]
    zone.mx("remote.test")
    submit(mailsystem, alice, [bob.address, "friend@remote.test"])
    assert len(inbox(bob.id, 1)) == 1
    [message] = received(sink, 1)
    assert message.recipients == ["friend@remote.test"]
    assert rows_in("delivered", 1)


def test_notify_success_brings_a_relayed_report_and_notify_never_brings_nothing(
    mailsystem, live_personas, zone, sink
):
    alice = live_personas["alice"]
    zone.mx("remote.test")
    sink.script("ghost@remote.test", ["550 5.1.1 no such user"])
    submit(mailsystem, alice, ["friend@remote.test"], rcpt_options=["NOTIFY=SUCCESS"])
    submit(mailsystem, alice, ["ghost@remote.test"], rcpt_options=["NOTIFY=NEVER"])
    assert rows_in("delivered", 1) and rows_in("failed", 1)
    [report] = inbox(alice.id, 1)
    _, [_, block], returned = report_parts(stored_raw(report))
    assert (block["Final-Recipient"], block["Action"]) == ("rfc822; friend@remote.test", "relayed")
    assert returned.get_content_type() == "text/rfc822-headers"
    assert len(inbox(alice.id, 2, timeout=2)) == 1  # nothing about ghost


def test_a_lone_message_leaves_within_100_ms_of_its_250(mailsystem, live_personas, zone, sink):
    """No batching delay when the queue is short: the filing task is published at once
    after a quiet spell, and the worker looks for tasks every 20 ms."""
    alice = live_personas["alice"]
    zone.mx("remote.test")
    submit(mailsystem, alice, ["warm@remote.test"])  # the worker and its connection are up
    received(sink, 1)
    delays = []
    with smtplib.SMTP_SSL(
        "127.0.0.1", mailsystem.port("submissions"), timeout=30, context=client_tls()
    ) as client:
        client.login(alice.address, alice.password)
        for n in range(7):
            time.sleep(0.3)  # each message alone in the queue
            recipient = f"r{n}@remote.test"
            client.sendmail(alice.address, [recipient], raw_message(alice.address, recipient))
            accepted_at = time.time()
            delays.append(received(sink, n + 2)[-1].at - accepted_at)
    assert statistics.median(delays) < 0.1, [round(d * 1000) for d in delays]
