"""The TLS policy of every listener, tried with real clients: Mozilla's "intermediate"
profile (TLS 1.3, and TLS 1.2 with AEAD suites only: RFC 9325 §4.2 recommends them, and
an outside scan flagged the CBC suites), and "modern" (TLS 1.3 only) on the client ports,
while port 25 stays intermediate for old MX peers. Nothing below TLS 1.2 (RFC 8996)."""

from __future__ import annotations

import smtplib
import socket
import ssl

import pytest
from django.core import checks

from tests.servers import RunningServer

IMPLICIT = ("submissions", "imaps", "pop3s")
CBC_ONLY = "ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA"
AEAD = "ECDHE-RSA-AES128-GCM-SHA256"


def client_context(*, tls12_ciphers: str | None = None, tls13: bool = True) -> ssl.SSLContext:
    """A client that trusts anything (the policy is what is tried here), offering TLS 1.2
    with `tls12_ciphers` and, unless told not to, TLS 1.3."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if tls12_ciphers is not None:
        context.set_ciphers(tls12_ciphers)
    if not tls13:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def handshake(server: RunningServer, listener: str, context: ssl.SSLContext) -> tuple[str, str]:
    """(TLS version, cipher) of a handshake: on an implicit-TLS port, or after STARTTLS on
    port 25 (RFC 3207). Raises ssl.SSLError when the server refuses."""
    port = server.port(listener)
    if listener == "smtp":
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.starttls(context=context)
            assert isinstance(smtp.sock, ssl.SSLSocket)
            return str(smtp.sock.version()), smtp.sock.cipher()[0]  # type: ignore[index]
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        return str(sock.version()), sock.cipher()[0]  # type: ignore[index]


@pytest.fixture
def tls_server(transactional_db):
    server = RunningServer(("smtp", *IMPLICIT)).start()
    yield server
    server.stop()


@pytest.fixture
def modern_server(transactional_db, settings):
    settings.TLS_PROFILE = "modern"
    server = RunningServer(("smtp", *IMPLICIT)).start()
    yield server
    server.stop()


@pytest.mark.parametrize("listener", ["smtp", *IMPLICIT])
def test_tls12_is_served_with_aead_suites_only(tls_server, listener):
    with pytest.raises(ssl.SSLError):
        handshake(tls_server, listener, client_context(tls12_ciphers=CBC_ONLY, tls13=False))
    context = client_context(tls12_ciphers=f"{CBC_ONLY}:{AEAD}", tls13=False)
    assert handshake(tls_server, listener, context) == ("TLSv1.2", AEAD)


@pytest.mark.parametrize("listener", IMPLICIT)
def test_modern_is_tls13_only_on_the_client_ports_and_port_25_keeps_tls12(modern_server, listener):
    tls12 = client_context(tls12_ciphers=AEAD, tls13=False)
    with pytest.raises(ssl.SSLError):
        handshake(modern_server, listener, tls12)
    assert handshake(modern_server, listener, client_context())[0] == "TLSv1.3"
    assert handshake(modern_server, "smtp", tls12) == ("TLSv1.2", AEAD)


def test_an_unknown_tls_profile_fails_the_system_check(settings):
    settings.TLS_PROFILE = "old"
    assert "mailhost.E010" in [problem.id for problem in checks.run_checks()]
