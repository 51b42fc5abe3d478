"""One ACME order (RFC 8555 §7.4) with HTTP-01 challenges, through certbot's `acme` library.

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

from apps.mailserver.certstore import Challenges

log = logging.getLogger(__name__)
ACCOUNT_KEY = "account-key.pem"
# RSA rather than ECDSA for the certificate: older mail clients still cannot do ECDSA.
KEY_BITS = 2048
USER_AGENT = "mailhost"
NETWORK_TIMEOUT = 30  # seconds per HTTP request to the CA


@dataclass(frozen=True)
class CA:
    """Where and as whom to order."""

    directory: str
    email: str
    ca_bundle: str  # PEM file trusted for the directory's HTTPS; empty: the system's
    state_dir: Path


class OrderFailed(Exception):
    """The CA did not issue: a challenge failed, it refused, or it did not answer."""


def obtain(ca: CA, names: list[str], timeout: float) -> tuple[bytes, bytes]:
    """A new key and the certificate chain the CA issued for `names`, in PEM."""
    acme = _client(ca)
    key_pem = _new_key_pem()
    csr = crypto_util.make_csr(key_pem, names)
    try:
        order = acme.new_order(csr)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
        answered = _answer_http01(acme, order, Challenges(ca.state_dir / "challenges"))
        try:
            order = acme.poll_and_finalize(order, deadline)
        finally:
            for token in answered:
                Challenges(ca.state_dir / "challenges").remove(token)
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


def _answer_http01(
    acme: client.ClientV2, order: messages.OrderResource, store: Challenges
) -> list[str]:
    """Publish the key authorization of every pending authorization's HTTP-01 challenge
    (§8.3) and tell the CA to validate; returns the tokens published."""
    tokens = []
    for authz in order.authorizations:
        if authz.body.status == messages.STATUS_VALID:
            continue  # an authorization the CA reused from an earlier order
        challenge = next(
            (c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)), None
        )
        if challenge is None:
            raise OrderFailed(f"{authz.body.identifier.value}: the CA offers no http-01")
        response, validation = challenge.response_and_validation(acme.net.key)
        token = challenge.chall.encode("token")
        store.put(token, validation)
        tokens.append(token)
        acme.answer_challenge(challenge, response)
    return tokens


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
