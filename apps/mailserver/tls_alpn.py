"""TLS-ALPN-01 (RFC 8737): ACME validation over port 443 where port 80 is not served.

The `acme` library dropped this challenge type; its two message classes are declared here
in the library's own terms, with the validation certificate (§3) and the listener that
presents it to a client asking for ALPN `acme-tls/1`, and closes every connection after the
handshake.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import socket
import ssl
from typing import Any

import josepy as jose
from acme import challenges
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier
from django.conf import settings

from apps.mailserver.certstore import Challenges
from apps.mailserver.listeners import ServerContext

log = logging.getLogger(__name__)
ALPN_PROTOCOL = "acme-tls/1"  # RFC 8737 §6.2
ID_PE_ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # RFC 8737 §6.1
HANDSHAKE_TIMEOUT = 10.0  # seconds


@challenges.ChallengeResponse.register
class TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    """The client's answer: an empty object once the certificate is in place (§3)."""

    typ = "tls-alpn-01"


@challenges.Challenge.register
class TLSALPN01(challenges.KeyAuthorizationChallenge):
    """RFC 8737 §3: the key authorization goes, hashed, into a certificate for the name."""

    response_cls = TLSALPN01Response
    typ = response_cls.typ

    def validation(self, account_key: jose.JWK, **unused_kwargs: Any) -> str:
        return self.key_authorization(account_key)


def validation_certificate(name: str, key_authorization: str) -> bytes:
    """Key and self-signed certificate (PEM) for `name` carrying, in a critical
    acmeIdentifier extension, the SHA-256 of the key authorization (RFC 8737 §3)."""
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode()).digest()
    # The extension's value is the DER of `Authorization ::= OCTET STRING (SIZE (32))`.
    authorization = bytes([0x04, len(digest)]) + digest
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(ID_PE_ACME_IDENTIFIER, authorization), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


def _listener_context() -> ssl.SSLContext:
    """No certificate of its own: the SNI callback picks the validation certificate for
    the name asked, or ends the handshake when there is none."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 §4: TLS 1.2 or newer
    context.set_alpn_protocols([ALPN_PROTOCOL])
    context.sni_callback = _choose_certificate
    return context


def _choose_certificate(
    connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
) -> int | None:
    store = Challenges(settings.ACME_STATE_DIR / "challenges")
    found = store.certificate_file(server_name) if server_name else None
    if found is None:
        return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([ALPN_PROTOCOL])
    context.load_cert_chain(found)
    connection.context = context
    return None


async def _close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # §3: the CA only looks at the handshake; there is nothing to say after it.
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, ssl.SSLError):
        pass


async def start(context: ServerContext, name: str, sock: socket.socket) -> asyncio.AbstractServer:
    """The listener's starter (registered in apps.py)."""
    return await asyncio.start_server(
        _close, sock=sock, ssl=_listener_context(), ssl_handshake_timeout=HANDSHAKE_TIMEOUT
    )
