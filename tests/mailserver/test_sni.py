"""Certificates by name (SNI, RFC 6066 §3): each TLS listener presents the certificate
whose subjectAltName covers the name the client asks for, the default one otherwise, and
a certificate written while the server runs is used without a restart."""

from __future__ import annotations

import datetime
import socket
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings as django_settings

from apps.mailserver import certificates
from tests.servers import RunningServer

LISTENERS = ("imaps", "submissions", "webs")


def write_certificate(folder: Path, *names: str, chain: bytes | None = None) -> bytes:
    """A self-signed certificate for `names` as fullchain.pem and privkey.pem in `folder`,
    each written beside and renamed into place (key first), as an ACME client does; its DER."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for name, data in (
        ("privkey.pem", pem_key),
        ("fullchain.pem", chain or cert.public_bytes(serialization.Encoding.PEM)),
    ):
        (folder / f".{name}.new").write_bytes(data)
        (folder / f".{name}.new").replace(folder / name)
    return cert.public_bytes(serialization.Encoding.DER)


def served(server: RunningServer, listener: str, name: str | None) -> bytes:
    """The DER certificate the listener presents to a client asking for `name`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # which certificate comes is what is tried here
    with (
        socket.create_connection(("127.0.0.1", server.port(listener)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as sock,
    ):
        der = sock.getpeercert(binary_form=True)
    assert der is not None
    return der


def default_certificate() -> bytes:
    return ssl.PEM_cert_to_DER_cert(django_settings.TLS_CERT_FILE.read_text())


@pytest.fixture
def certs_dir(settings, tmp_path) -> Path:
    settings.TLS_CERTS_DIR = tmp_path / "certs"
    return settings.TLS_CERTS_DIR


@pytest.fixture
def tls_server(transactional_db):
    server = RunningServer(LISTENERS).start()
    yield server
    server.stop()


@pytest.mark.parametrize("listener", LISTENERS)
def test_each_name_gets_the_certificate_that_covers_it(certs_dir, transactional_db, listener):
    one = write_certificate(certs_dir / "mail.one.test", "mail.one.test")
    two = write_certificate(certs_dir / "two", "mail.two.test", "imap.two.test")
    wild = write_certificate(certs_dir / "three", "*.three.test")
    server = RunningServer(LISTENERS).start()
    try:
        assert served(server, listener, "mail.one.test") == one
        assert served(server, listener, "MAIL.ONE.TEST") == one  # DNS names ignore case
        assert served(server, listener, "imap.two.test") == two
        assert served(server, listener, "imap.three.test") == wild
        assert served(server, listener, "a.b.three.test") == default_certificate()
        assert served(server, listener, "elsewhere.test") == default_certificate()
        assert served(server, listener, None) == default_certificate()
    finally:
        server.stop()


# How each plain listener is asked to start TLS (RFC 3207 §4, RFC 9051 §6.2.1, RFC 2595 §4).
STARTTLS = {
    "smtp": [b"EHLO client.test", b"STARTTLS"],
    "submission": [b"EHLO client.test", b"STARTTLS"],
    "imap": [b"a STARTTLS"],
    "pop3": [b"STLS"],
}


def served_after_starttls(server: RunningServer, listener: str, name: str) -> bytes:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", server.port(listener)), timeout=10) as raw:
        with raw.makefile("rb") as reader:
            reader.readline()  # greeting
            for line in STARTTLS[listener]:
                raw.sendall(line + b"\r\n")
                while reader.readline()[3:4] == b"-":  # the rest of a multi-line reply
                    pass
        with context.wrap_socket(raw, server_hostname=name) as sock:
            der = sock.getpeercert(binary_form=True)
    assert der is not None
    return der


@pytest.mark.parametrize("listener", list(STARTTLS))
def test_starttls_also_chooses_the_certificate_by_name(certs_dir, transactional_db, listener):
    one = write_certificate(certs_dir / "one", "mail.one.test")
    server = RunningServer((listener,)).start()
    try:
        assert served_after_starttls(server, listener, "mail.one.test") == one
        assert served_after_starttls(server, listener, "other.test") == default_certificate()
    finally:
        server.stop()


def wait_until_served(server, listener: str, name: str, expected: bytes) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if served(server, listener, name) == expected:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("listener", LISTENERS)
def test_a_new_or_renewed_certificate_is_used_without_a_restart(
    certs_dir, tls_server, monkeypatch, listener
):
    monkeypatch.setattr(certificates, "RELOAD_SECONDS", 0.1)
    assert served(tls_server, listener, "mail.one.test") == default_certificate()
    first = write_certificate(certs_dir / "one", "mail.one.test")
    assert wait_until_served(tls_server, listener, "mail.one.test", first)
    renewed = write_certificate(certs_dir / "one", "mail.one.test")
    assert wait_until_served(tls_server, listener, "mail.one.test", renewed)


def test_a_certificate_that_does_not_load_leaves_the_old_one_in_use(
    certs_dir, tls_server, monkeypatch, caplog
):
    monkeypatch.setattr(certificates, "RELOAD_SECONDS", 0.1)
    good = write_certificate(certs_dir / "one", "mail.one.test")
    assert wait_until_served(tls_server, "imaps", "mail.one.test", good)
    write_certificate(certs_dir / "one", "mail.one.test", chain=b"not a certificate")
    time.sleep(0.3)
    assert served(tls_server, "imaps", "mail.one.test") == good
    assert "could not load the certificate" in caplog.text
