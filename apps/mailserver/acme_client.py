"""One ACME order (RFC 8555 §7.4), through certbot's `acme` library: HTTP-01 challenges
(§8.3), or TLS-ALPN-01 (RFC 8737, apps/mailserver/tls_alpn.py) where port 80 is not served.

The account key lives in the data directory and is made on first use; the account is
found again by its key (§7.3.1), so nothing else about it needs keeping.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import josepy as jose
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from apps.mailserver import tls_alpn
from apps.mailserver.certstore import Challenges

log = logging.getLogger(__name__)
ACCOUNT_KEY = "account-key.pem"
# RSA rather than ECDSA for the certificate: older mail clients still cannot do ECDSA.
KEY_BITS = 2048
USER_AGENT = "mailhost"
NETWORK_TIMEOUT = 30  # seconds per HTTP request to the CA
HTTP_01 = challenges.HTTP01.typ
TLS_ALPN_01 = tls_alpn.TLSALPN01.typ


@dataclass(frozen=True)
class CA:
    """Where and as whom to order."""

    directory: str
    email: str
    ca_bundle: str  # PEM file trusted for the directory's HTTPS; empty: the system's
    state_dir: Path


class OrderFailed(Exception):
    """The CA did not issue: a challenge failed, it refused, or it did not answer."""


def obtain(ca: CA, names: list[str], method: str, timeout: float) -> tuple[bytes, bytes]:
    """A new key and the certificate chain the CA issued for `names`, in PEM, validated by
    `method` (HTTP_01 or TLS_ALPN_01)."""
    acme = _client(ca)
    key_pem = _new_key_pem()
    csr = crypto_util.make_csr(key_pem, names)
    store = Challenges(ca.state_dir / "challenges")
    try:
        order = acme.new_order(csr)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
        published: list[tuple[str, str]] = []
        try:
            _answer(acme, order, method, store, published)
            order = acme.poll_and_finalize(order, deadline)
        finally:
            _withdraw(store, published)
    except (errors.Error, messages.Error, OSError) as exc:
        raise OrderFailed(_describe(exc)) from exc
    return key_pem, order.fullchain_pem.encode()


def _client(ca: CA) -> client.ClientV2:
    """A client signed with the account key, registered (or found again) at the CA."""
    key = jose.JWKRSA(key=_account_key(ca.state_dir))
    # `acme` hands verify_ssl to requests as `verify`, which also takes a CA bundle's
    # path: a test CA is trusted that way, and verification is never turned off.
    verify: bool | str = ca.ca_bundle or True
    net = client.ClientNetwork(
        key,
        user_agent=USER_AGENT,
        verify_ssl=verify,  # type: ignore[arg-type]
        timeout=NETWORK_TIMEOUT,
    )
    try:
        acme = client.ClientV2(client.ClientV2.get_directory(ca.directory, net), net)
        _register(acme, ca.email)
    except (errors.Error, messages.Error, OSError) as exc:
        raise OrderFailed(_describe(exc)) from exc
    return acme


def _register(acme: client.ClientV2, email: str) -> None:
    registration = messages.NewRegistration.from_data(
        email=email or None, terms_of_service_agreed=True
    )
    try:
        acme.new_account(registration)
    except errors.ConflictError as existing:
        # §7.3.1: the key already has an account; the CA says where it is.
        acme.net.account = messages.RegistrationResource(
            uri=existing.location, body=messages.Registration()
        )


def _answer(
    acme: client.ClientV2,
    order: messages.OrderResource,
    method: str,
    store: Challenges,
    published: list[tuple[str, str]],
) -> None:
    """Publish the answer to every pending authorization's challenge of type `method` and
    tell the CA to validate (§7.5.1); what was published is added to `published`."""
    for authz in order.authorizations:
        if authz.body.status == messages.STATUS_VALID:
            continue  # an authorization the CA reused from an earlier order
        name = authz.body.identifier.value
        challenge = next((c for c in authz.body.challenges if c.chall.typ == method), None)
        if challenge is None:
            raise OrderFailed(f"{name}: the CA offers no {method}")
        response, key_authorization = challenge.response_and_validation(acme.net.key)
        if method == TLS_ALPN_01:
            store.put_certificate(name, tls_alpn.validation_certificate(name, key_authorization))
            published.append((method, name))
        else:
            token = challenge.chall.encode("token")
            store.put(token, key_authorization)
            published.append((method, token))
        acme.answer_challenge(challenge, response)


def _withdraw(store: Challenges, published: list[tuple[str, str]]) -> None:
    for method, key in published:
        if method == TLS_ALPN_01:
            store.remove_certificate(key)
        else:
            store.remove(key)


def _account_key(state_dir: Path) -> rsa.RSAPrivateKey:
    path = state_dir / ACCOUNT_KEY
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(_new_key_pem())
        log.info("made an ACME account key in %s", path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _new_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _describe(exc: BaseException) -> str:
    """One line for the log and the state row: a failed validation names the challenge."""
    if isinstance(exc, errors.ValidationError):
        problems = [
            f"{a.body.identifier.value}: {c.error}"
            for a in exc.failed_authzrs
            for c in a.body.challenges
            if c.error is not None
        ]
        return "validation failed: " + "; ".join(problems)
    return f"{type(exc).__name__}: {exc}"
