"""AUTHORIZATION state: CAPA, STLS, USER/PASS and AUTH PLAIN, and the TLS-only policy."""

from __future__ import annotations

import base64
import poplib

import pytest

from apps.accounts import throttle


def plain(*parts: str) -> str:
    return base64.b64encode("\0".join(parts).encode()).decode()


def test_before_tls_capa_offers_stls_and_no_way_to_send_a_password(pop3):
    client = pop3.connect("plain")
    assert client.getwelcome().startswith(b"+OK")
    caps = client.capa()
    assert "STLS" in caps and "USER" not in caps and "SASL" not in caps
    for name in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
        assert name in caps
    assert caps["IMPLEMENTATION"] == ["Mailhost"]
    client.quit()


@pytest.mark.parametrize("kind", ["stls", "pop3s"])
def test_under_tls_capa_offers_user_and_sasl_plain_but_not_stls(pop3, kind):
    client = pop3.connect(kind)
    caps = client.capa()
    assert "USER" in caps and caps["SASL"] == ["PLAIN"] and "STLS" not in caps
    assert {"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"} <= set(caps)
    client.quit()


@pytest.mark.parametrize(
    "command", [b"USER alice@example.org", b"PASS secret", b"AUTH PLAIN AGEAYg=="]
)
def test_it_refuses_credentials_before_tls(raw_client, command):
    client = raw_client(tls=False)
    reply = client.command(command)
    assert reply.startswith(b"-ERR [AUTH] Plaintext authentication disallowed")


def test_loopback_may_log_in_without_tls_when_settings_allow_it(pop3, alice, settings):
    settings.ALLOW_PLAINTEXT_AUTH_LOOPBACK = True
    client = pop3.login(alice, "plain")
    assert client.stat() == (0, 0)
    client.quit()


@pytest.mark.parametrize("kind", ["stls", "pop3s"])
def test_user_and_pass_log_in_over_tls(pop3, alice, kind):
    client = pop3.login(alice, kind)
    assert client.stat() == (0, 0)
    assert client.quit().startswith(b"+OK")


def test_a_wrong_password_is_refused_with_the_auth_code_and_the_session_may_retry(pop3, alice):
    client = pop3.connect()
    client.user(alice.address)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        client.pass_("wrong")
    with pytest.raises(poplib.error_proto, match=r"USER first"):
        client.pass_(alice.password)
    client.user(alice.address)
    assert client.pass_(alice.password).startswith(b"+OK")
    client.quit()


def test_auth_plain_with_an_initial_response_logs_in(raw_client, alice):
    client = raw_client()
    reply = client.command(f"AUTH PLAIN {plain('', alice.address, alice.password)}".encode())
    assert reply.startswith(b"+OK")
    assert client.command(b"STAT") == b"+OK 0 0\r\n"


def test_auth_plain_after_the_empty_challenge_logs_in(raw_client, alice):
    client = raw_client()
    assert client.command(b"AUTH PLAIN") == b"+ \r\n"
    reply = client.command(plain(alice.address, alice.address, alice.password).encode())
    assert reply.startswith(b"+OK")


def test_auth_plain_may_be_cancelled_and_refuses_someone_elses_identity(raw_client, alice):
    client = raw_client()
    assert client.command(b"AUTH PLAIN") == b"+ \r\n"
    assert client.command(b"*").startswith(b"-ERR [AUTH]")
    mallory = plain("bob@example.org", alice.address, alice.password).encode()
    assert client.command(b"AUTH PLAIN " + mallory).startswith(b"-ERR [AUTH]")
    assert client.command(b"AUTH PLAIN !!!").startswith(b"-ERR [AUTH]")
    assert client.command(b"AUTH CRAM-MD5").startswith(b"-ERR [AUTH]")


def test_a_bare_auth_lists_the_mechanisms(raw_client):
    client = raw_client()
    assert client.command(b"AUTH") == b"+OK\r\n"
    assert client.multiline() == b"PLAIN\r\n.\r\n"


def test_apop_is_refused(raw_client):
    client = raw_client()
    assert client.command(b"APOP alice c4c9334bac560ecc979e58001b3e22fb").startswith(b"-ERR")


def test_a_throttled_account_is_refused_even_with_the_right_password(pop3, alice):
    for _ in range(throttle.BLOCK_AFTER_ACCOUNT):
        throttle.record_failure("192.0.2.1", alice.address)
    client = pop3.connect()
    client.user(alice.address)
    with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\]"):
        client.pass_(alice.password)
    client.quit()


def test_stls_is_refused_once_tls_is_on(raw_client):
    client = raw_client()
    assert client.command(b"STLS").startswith(b"-ERR")


def test_commands_pipelined_after_stls_end_the_session_before_tls(raw_client):
    client = raw_client(tls=False)
    client.send(b"STLS\r\nUSER alice@example.org\r\n")
    assert client.line().startswith(b"-ERR")
    assert client.line() == b""


def test_transaction_commands_wait_for_a_login(raw_client):
    client = raw_client()
    assert client.command(b"STAT") == b"-ERR Command not valid in this state\r\n"
    assert client.command(b"QUIT").startswith(b"+OK")
