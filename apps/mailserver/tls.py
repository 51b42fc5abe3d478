"""TLS for every listener: a self-signed certificate when none is configured, and the
policy of every server context.

The policy is Mozilla's "intermediate" profile (https://wiki.mozilla.org/Security/Server_Side_TLS):
TLS 1.3, and TLS 1.2 with forward-secret AEAD suites only (ECDHE with AES-GCM or
ChaCha20-Poly1305; no CBC). "modern" is TLS 1.3 only; MAILHOST_TLS_PROFILE=modern applies
it to the client ports, while port 25 stays intermediate for old MX peers.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.conf import settings

from apps.mailserver import certstore

log = logging.getLogger(__name__)
SELF_SIGNED_DAYS = 825  # the longest validity Apple clients accept for a TLS certificate


def ensure_certificate(cert_file: Path, key_file: Path, hostname: str) -> bool:
    """Write a self-signed certificate for `hostname` unless both files exist.
    Returns True when it made one."""
    if cert_file.exists() and key_file.exists():
        return False
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64])])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost")]
    alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_file.parent.mkdir(parents=True, exist_ok=True)
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("made a self-signed certificate for %s in %s", hostname, cert_file)
    return True


def default_pair(hostname: str) -> tuple[Path, Path]:
    """The certificate listeners present by default: MAILHOST_TLS_CERT when configured,
    else the one in the certs folder of the host name (from ACME, or put there by hand),
    else the self-signed one, made when missing."""
    own = settings.TLS_CERTS_DIR / hostname
    if not settings.TLS_CERT_CONFIGURED and certstore.load(settings.TLS_CERTS_DIR, hostname):
        return own / certstore.FULLCHAIN, own / certstore.PRIVKEY
    ensure_certificate(settings.TLS_CERT_FILE, settings.TLS_KEY_FILE, hostname)
    return settings.TLS_CERT_FILE, settings.TLS_KEY_FILE


INTERMEDIATE = "intermediate"
MODERN = "modern"
PROFILES = (INTERMEDIATE, MODERN)
# Mozilla intermediate, TLS 1.2 suites: AEAD with ECDHE only. (Mozilla also lists DHE
# suites; finite-field DHE costs more and no mail client needs it.) TLS 1.3 suites are
# all AEAD and OpenSSL's defaults stand.
TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)


def policy_context(profile: str = INTERMEDIATE) -> ssl.SSLContext:
    """A server-side context with the profile's versions and suites, and no certificate.
    Never below TLS 1.2 (RFC 8996); "modern" is TLS 1.3 only."""
    if profile not in PROFILES:
        raise ValueError(f"unknown TLS profile {profile!r}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if profile == MODERN else ssl.TLSVersion.TLSv1_2
    )
    context.set_ciphers(TLS12_CIPHERS)
    # Mozilla: with only strong suites on offer, the client's order wins (a phone without
    # AES hardware puts ChaCha20 first).
    context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


def server_context(cert_file: Path, key_file: Path, profile: str = INTERMEDIATE) -> ssl.SSLContext:
    """A server-side context with the profile's policy and this one certificate."""
    context = policy_context(profile)
    context.load_cert_chain(cert_file, key_file)
    return context
