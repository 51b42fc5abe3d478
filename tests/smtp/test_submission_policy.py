"""Submission fix-ups and limits: Message-ID and Date added, send rate, AUTH throttling."""

from __future__ import annotations

import smtplib

import pytest

from apps.mailstore.blobs import blob_store
from tests.mailclient import client_tls, wait_for_messages


def logged_in(server, persona) -> smtplib.SMTP_SSL:
    client = smtplib.SMTP_SSL(
        "127.0.0.1", server.port("submissions"), timeout=30, context=client_tls()
    )
    client.login(persona.address, persona.password)
    return client


def test_a_missing_message_id_and_date_are_added(mailsystem, live_personas):
    alice, bob = live_personas["alice"], live_personas["bob"]
    raw = f"From: {alice.address}\r\nTo: {bob.address}\r\nSubject: bare\r\n\r\nHi\r\n".encode()
    with logged_in(mailsystem, alice) as client:
        client.sendmail(alice.address, [bob.address], raw)
    [message] = wait_for_messages(bob.id, 1)
    stored = blob_store().read(message.blob_key)
    assert message.message_id.endswith("@example.org>")
    assert b"\r\nDate: " in stored.split(b"\r\n\r\n")[0]
    assert b"with ESMTPSA" in stored  # RFC 3848: authenticated, over TLS
    assert stored.endswith(raw)


@pytest.mark.parametrize(
    ("message_id", "indexed_as"),
    [("<mine@example.org>", "<mine@example.org>"), ("<\\@", "")],  # the second does not parse
)
def test_a_message_with_its_own_message_id_keeps_it(
    mailsystem, live_personas, message_id, indexed_as
):
    alice, bob = live_personas["alice"], live_personas["bob"]
    raw = (
        f"From: {alice.address}\r\nTo: {bob.address}\r\nMessage-ID: {message_id}\r\n"
        f"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nSubject: own\r\n\r\nHi\r\n"
    ).encode()
    with logged_in(mailsystem, alice) as client:
        client.sendmail(alice.address, [bob.address], raw)
    [message] = wait_for_messages(bob.id, 1)
    assert message.message_id == indexed_as
    stored = blob_store().read(message.blob_key)
    assert stored.count(b"Message-ID:") == 1 and stored.endswith(raw)


def test_a_user_over_the_hourly_send_rate_gets_450(mailserver, live_personas, settings):
    settings.SUBMISSION_RATE_PER_HOUR = 2
    alice = live_personas["alice"]
    with logged_in(mailserver, alice) as client:
        codes = []
        for _ in range(3):
            codes.append(client.mail(alice.address)[0])
            client.rset()
    assert codes == [250, 250, 450]


def test_repeated_wrong_passwords_are_throttled_then_refused_with_454(mailserver, live_personas):
    replies = []
    for _ in range(11):
        with smtplib.SMTP_SSL(
            "127.0.0.1", mailserver.port("submissions"), timeout=60, context=client_tls()
        ) as client:
            client.ehlo("client.test")
            replies.append(client.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHdyb25n")[0])
    assert replies[:10] == [535] * 10
    assert replies[10] == 454  # the account is blocked for a while (RFC 4954 §6 4.7.0)


@pytest.fixture(autouse=True)
def _quick_throttle(monkeypatch):
    # The growing delay is real; cap it so the test does not wait for minutes.
    from apps.accounts import throttle

    monkeypatch.setattr(throttle, "MAX_DELAY_SECONDS", 0.2)


def test_a_from_header_that_does_not_parse_is_refused_as_not_the_users(mailserver, live_personas):
    """553 5.7.1, a permanent answer, where the parser's IndexError once gave 451."""
    alice = live_personas["alice"]
    raw = f"From: <\r\nTo: {alice.address}\r\nSubject: odd\r\n\r\nHi\r\n".encode()
    with logged_in(mailserver, alice) as client, pytest.raises(smtplib.SMTPDataError) as error:
        client.sendmail(alice.address, [alice.address], raw)
    assert error.value.smtp_code == 553
