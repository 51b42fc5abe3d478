"""Not-authenticated state (RFC 9051 §6.2): greeting, CAPABILITY, STARTTLS, LOGIN,
AUTHENTICATE PLAIN with SASL-IR (RFC 4959), and the states commands are valid in."""

from __future__ import annotations

import base64
import imaplib
import socket

import pytest

from tests.imap.conftest import untagged
from tests.mailclient import client_tls


def test_the_greeting_is_an_untagged_ok_with_capabilities(imap):
    """RFC 9051 §7.1.1: the greeting is OK (or PREAUTH/BYE); CAPABILITY may ride along."""
    sock = socket.create_connection(("127.0.0.1", imap.tls_port), 10)
    with client_tls().wrap_socket(sock, server_hostname="localhost") as tls:
        greeting = tls.recv(4096)
    assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 ")
    assert greeting.endswith(b"\r\n")


def test_plain_port_offers_starttls_and_disables_login(imap):
    """RFC 9051 §6.2.3 / §7.2.2: LOGINDISABLED until TLS; AUTH= absent."""
    client = imap.plain()
    assert "STARTTLS" in client.capabilities
    assert "LOGINDISABLED" in client.capabilities
    assert not any(cap.startswith("AUTH=") for cap in client.capabilities)
    client.logout()


def test_login_before_starttls_is_refused_with_privacyrequired(imap, alice):
    raw = imap.raw(tls=False)
    lines = raw.command(f'LOGIN "{alice.address}" "{alice.password}"')
    assert lines[-1].startswith(b"t1 NO [PRIVACYREQUIRED]")


def test_starttls_then_login_works_and_capabilities_change(imap, alice):
    client = imap.plain()
    client.starttls(client_tls())
    assert "STARTTLS" not in client.capabilities
    assert "AUTH=PLAIN" in client.capabilities
    typ, data = client.login(alice.address, alice.password)
    assert typ == "OK"
    # RFC 9051 §6.2.3: the OK carries the post-login capabilities.
    assert b"[CAPABILITY" in data[0] and b"QRESYNC" in data[0]
    client.logout()


def test_starttls_twice_is_bad(imap):
    client = imap.plain()
    client.starttls(client_tls())
    with pytest.raises(imaplib.IMAP4.error, match=r"BAD.*TLS is already active"):
        client._simple_command("STARTTLS")


def test_commands_pipelined_after_starttls_end_the_connection(imap):
    """CVE-2011-0411: plaintext sent after STARTTLS could have been injected."""
    raw = imap.raw(tls=False)
    raw.send(b"a STARTTLS\r\nb NOOP\r\n")
    assert raw.line().startswith(b"* BYE")


def test_wrong_password_is_authenticationfailed(imap, alice):
    client = imap.connect()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login(alice.address, "wrong")


def test_three_failed_logins_close_the_connection(imap, alice):
    raw = imap.raw()
    for _ in range(3):
        lines = raw.command(f'LOGIN "{alice.address}" "nope"')
        assert b"NO [AUTHENTICATIONFAILED]" in lines[-1]
    assert raw.line().startswith(b"* BYE")


def test_a_blocked_account_is_refused_without_checking(imap, alice, monkeypatch):
    from apps.accounts import throttle

    for _ in range(throttle.BLOCK_AFTER_ACCOUNT):
        throttle.record_failure("10.0.0.1", alice.address)
    raw = imap.raw()
    lines = raw.command(f'LOGIN "{alice.address}" "{alice.password}"')
    assert lines[-1].startswith(b"t1 NO [UNAVAILABLE]")


def test_authenticate_plain_with_initial_response(imap, alice):
    """RFC 4959 §3: SASL-IR puts the response on the command line."""
    raw = imap.raw()
    token = base64.b64encode(f"\0{alice.address}\0{alice.password}".encode()).decode()
    lines = raw.command(f"AUTHENTICATE PLAIN {token}")
    assert lines[-1].startswith(b"t1 OK [CAPABILITY ")


def test_authenticate_plain_with_a_continuation(imap, alice):
    client = imap.connect()
    typ, _ = client.authenticate("PLAIN", lambda _: f"\0{alice.address}\0{alice.password}".encode())
    assert typ == "OK"


def test_authenticate_cancelled_with_a_star_is_bad(imap):
    """RFC 9051 §6.2.2: "*" cancels; the server answers BAD."""
    raw = imap.raw()
    raw.send(b"a AUTHENTICATE PLAIN\r\n")
    assert raw.line() == b"+ "
    raw.send(b"*\r\n")
    assert raw.until_tagged("a")[-1].startswith(b"a BAD")


def test_authenticate_as_someone_else_is_refused(imap, alice, bob):
    raw = imap.raw()
    token = base64.b64encode(f"{bob.address}\0{alice.address}\0{alice.password}".encode())
    lines = raw.command(b"AUTHENTICATE PLAIN " + token)
    assert lines[-1].startswith(b"t1 NO [AUTHORIZATIONFAILED]")


def test_unknown_mechanisms_are_refused(imap):
    raw = imap.raw()
    assert raw.command("AUTHENTICATE CRAM-MD5")[-1].startswith(b"t1 NO [CANNOT]")


@pytest.mark.parametrize(
    "command",
    ["SELECT INBOX", 'LIST "" *', "FETCH 1 FLAGS", "IDLE", "ENABLE QRESYNC", "CHECK"],
)
def test_commands_need_the_right_state(imap, command):
    """RFC 9051 §6: a command outside its state is BAD."""
    raw = imap.raw()
    assert raw.command(command)[-1].startswith(b"t1 BAD")


@pytest.mark.parametrize("command", ["FETCH 1 FLAGS", "EXPUNGE", "CLOSE", "UID SEARCH ALL"])
def test_selected_state_commands_need_a_selected_mailbox(imap, alice, command):
    raw = imap.raw(alice)
    assert raw.command(command)[-1].startswith(b"t2 BAD")


def test_login_is_not_allowed_twice(imap, alice):
    raw = imap.raw(alice)
    lines = raw.command(f'LOGIN "{alice.address}" "{alice.password}"')
    assert lines[-1].startswith(b"t2 BAD")


def test_logout_sends_bye_then_ok_and_closes(imap):
    """RFC 9051 §6.1.3."""
    raw = imap.raw()
    lines = raw.command("LOGOUT")
    assert untagged(lines, "BYE")
    assert lines[-1].startswith(b"t1 OK")
    with pytest.raises(ConnectionError):
        raw.line()


def test_capability_after_login_lists_the_extensions(imap, alice):
    client = imap.login(alice)
    _typ, data = client.capability()
    caps = set(data[0].split())
    for needed in (
        b"IDLE",
        b"UIDPLUS",
        b"MOVE",
        b"CONDSTORE",
        b"QRESYNC",
        b"ESEARCH",
        b"COMPRESS=DEFLATE",
        b"LITERAL+",
        b"SPECIAL-USE",
        b"QUOTA",
        b"BINARY",
    ):
        assert needed in caps
    assert any(cap.startswith(b"APPENDLIMIT=") for cap in caps)


def test_id_answers_with_the_server_identity(imap, alice):
    """RFC 2971 §3.1: ID is valid in any state."""
    raw = imap.raw()
    lines = raw.command('ID ("name" "pytest")')
    assert untagged(lines, "ID")[0].startswith(b'* ID ("name" "Mailhost"')
    assert lines[-1].startswith(b"t1 OK")
