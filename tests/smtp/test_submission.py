"""Submission on 587 (STARTTLS) and 465 (implicit TLS): AUTH, sender ownership, relay."""

from __future__ import annotations

import smtplib

import pytest

from tests.mailclient import client_tls, raw_message


def submission(mailserver) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", mailserver.port("submission"), timeout=30)
    client.ehlo("client.test")
    return client


def test_ehlo_advertises_the_extensions_and_starttls_but_no_auth_before_tls(mailserver):
    client = submission(mailserver)
    for extension in (
        "pipelining",
        "size",
        "8bitmime",
        "smtputf8",
        "enhancedstatuscodes",
        "starttls",
        "chunking",
        "dsn",
    ):
        assert client.has_extn(extension), extension
    assert not client.has_extn("auth")
    client.starttls(context=client_tls())
    client.ehlo("client.test")
    assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
    assert not client.has_extn("starttls")
    client.quit()


def test_auth_before_tls_is_refused(mailserver, live_personas):
    client = submission(mailserver)
    code, text = client.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==")
    assert code == 538 and b"5.7.11" in text
    client.quit()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_over_starttls_then_send_to_a_local_user(mailserver, live_personas, mechanism):
    alice, bob = live_personas["alice"], live_personas["bob"]
    client = submission(mailserver)
    client.starttls(context=client_tls())
    client.ehlo("client.test")
    client.user, client.password = alice.address, alice.password
    code, _ = client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))
    assert code == 235
    refused = client.sendmail(alice.address, [bob.address], raw_message(alice.address, bob.address))
    assert refused == {}
    client.quit()


def test_implicit_tls_on_465_allows_auth(mailserver, live_personas):
    alice = live_personas["alice"]
    client = smtplib.SMTP_SSL(
        "127.0.0.1", mailserver.port("submissions"), timeout=30, context=client_tls()
    )
    client.ehlo("client.test")
    assert client.has_extn("auth") and not client.has_extn("starttls")
    assert client.login(alice.address, alice.password)[0] == 235
    client.quit()


@pytest.mark.parametrize("listener", ["submission", "submissions"])
def test_starttls_inside_tls_is_refused(mailserver, listener):
    """RFC 3207 §4.2: no second STARTTLS once TLS is on (after STARTTLS on 587, or on 465)."""
    if listener == "submission":
        client = submission(mailserver)
        client.starttls(context=client_tls())
    else:
        port = mailserver.port("submissions")
        client = smtplib.SMTP_SSL("127.0.0.1", port, timeout=30, context=client_tls())
    client.ehlo("client.test")
    assert client.docmd("STARTTLS")[0] == 503
    assert client.noop()[0] == 250  # the session goes on
    client.quit()


def test_a_wrong_password_is_refused(mailserver, live_personas):
    client = smtplib.SMTP_SSL(
        "127.0.0.1", mailserver.port("submissions"), timeout=30, context=client_tls()
    )
    with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
        client.login("alice@example.org", "not the password")
    assert failure.value.smtp_code == 535
    client.quit()


def test_mail_without_auth_on_submission_is_refused(mailserver, live_personas):
    client = submission(mailserver)
    client.starttls(context=client_tls())
    client.ehlo("client.test")
    code, text = client.mail("alice@example.org")
    assert code == 530 and b"5.7.0" in text
    client.quit()


def test_sending_as_someone_else_is_refused(mailserver, live_personas):
    alice, bob = live_personas["alice"], live_personas["bob"]
    client = smtplib.SMTP_SSL(
        "127.0.0.1", mailserver.port("submissions"), timeout=30, context=client_tls()
    )
    client.login(alice.address, alice.password)
    code, text = client.mail(bob.address)
    assert code == 553 and b"5.7.1" in text
    client.rset()
    # Envelope sender is hers, but the From header is Bob's: refused at the end of DATA.
    with pytest.raises(smtplib.SMTPDataError) as failure:
        client.sendmail(alice.address, [bob.address], raw_message(bob.address, bob.address))
    assert failure.value.smtp_code == 553
    client.quit()


def test_a_plus_address_and_an_alias_of_the_user_may_be_used(mailserver, live_personas):
    from apps.accounts.services import create_alias

    alice, bob = live_personas["alice"], live_personas["bob"]
    create_alias("sales@example.org", [alice.address])
    client = smtplib.SMTP_SSL(
        "127.0.0.1", mailserver.port("submissions"), timeout=30, context=client_tls()
    )
    client.login(alice.address, alice.password)
    for sender in ("alice+lists@example.org", "sales@example.org"):
        assert client.sendmail(sender, [bob.address], raw_message(sender, bob.address)) == {}
    client.quit()


@pytest.mark.parametrize("listener", ["smtp", "submission"])
def test_relay_without_auth_is_refused_on_every_plain_listener(mailserver, live_personas, listener):
    client = smtplib.SMTP("127.0.0.1", mailserver.port(listener), timeout=30)
    client.ehlo("client.test")
    if listener == "submission":
        client.starttls(context=client_tls())
        client.ehlo("client.test")
        code, _ = client.mail("someone@elsewhere.test")
        assert code == 530  # submission wants AUTH before anything
    else:
        assert client.mail("someone@elsewhere.test")[0] == 250
        code, text = client.rcpt("victim@remote.test")
        assert code == 554 and b"5.7.1" in text
    client.quit()


def test_relay_without_auth_is_refused_over_implicit_tls(mailserver, live_personas):
    client = smtplib.SMTP_SSL(
        "127.0.0.1", mailserver.port("submissions"), timeout=30, context=client_tls()
    )
    client.ehlo("client.test")
    assert client.mail("someone@elsewhere.test")[0] == 530
    client.quit()


def test_an_authenticated_user_may_send_to_a_remote_domain(mailserver, live_personas):
    alice = live_personas["alice"]
    client = smtplib.SMTP_SSL(
        "127.0.0.1", mailserver.port("submissions"), timeout=30, context=client_tls()
    )
    client.login(alice.address, alice.password)
    assert (
        client.sendmail(
            alice.address, ["friend@remote.test"], raw_message(alice.address, "friend@remote.test")
        )
        == {}
    )
    client.quit()
    from apps.mailstore.models import Incoming

    incoming = Incoming.objects.get()
    assert incoming.recipients[0]["external"] == ["friend@remote.test"]
